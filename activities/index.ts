import { createConversationActivities, type ConversationDeps } from './conversation.js';
import { createDeliveryActivities, type DeliveryDeps } from './delivery.js';

export type ActivityDeps = ConversationDeps & DeliveryDeps;

/** All activities, built from their dependencies so tests can pass real or local ones. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createConversationActivities(deps),
    ...createDeliveryActivities(deps),
  };
}
