import type { Activities } from '../contracts/activities.js';
import { createAiActivities, type AiDeps } from './ai.js';
import { createConversationActivities, type ConversationDeps } from './conversation.js';
import { createRetentionActivities } from './retention.js';
import { createLegacyActivities } from './legacy.js';
import { createPulseActivities } from './pulse.js';
import { createKnowledgeActivities } from './knowledge.js';
import { createDeliveryActivities, type DeliveryDeps } from './delivery.js';
import { createDataActivities } from './data.js';
import { createEventActivities } from './events.js';

export type ActivityDeps = ConversationDeps & AiDeps & DeliveryDeps;

/**
 * All activities, built from their dependencies so tests can pass real or local ones. Checked
 * against the contract both ways: every activity it declares is here with its signature, and
 * nothing is registered that workflows cannot see.
 */
export function createActivities(deps: ActivityDeps): Activities {
  const activities = {
    ...createConversationActivities(deps),
    ...createRetentionActivities(deps),
    ...createLegacyActivities(deps),
    ...createPulseActivities(deps),
    ...createAiActivities(deps),
    ...createKnowledgeActivities(deps),
    ...createDeliveryActivities(deps),
    ...createDataActivities(deps),
    ...createEventActivities(deps),
  };
  return activities satisfies Activities & Record<Exclude<keyof typeof activities, keyof Activities>, never>;
}
