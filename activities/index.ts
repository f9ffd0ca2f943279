import { createConversationActivities, type ConversationDeps } from './conversation.js';
import { createDataActivities } from './data.js';

export type ActivityDeps = ConversationDeps;

/** All activities, built from their dependencies so tests can pass real or local ones. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createConversationActivities(deps),
    ...createDataActivities(deps),
  };
}
