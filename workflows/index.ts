export { conversationWorkflow } from './conversation.js';
export { retentionPurgeWorkflow } from './retention.js';
