export { conversationWorkflow } from './conversation.js';
export { knowledgeIngestWorkflow } from './knowledge.js';
