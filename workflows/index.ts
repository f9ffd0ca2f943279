export { conversationWorkflow } from './conversation.js';
export * from './data.js';
