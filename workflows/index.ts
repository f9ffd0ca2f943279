export { conversationWorkflow } from './conversation.js';
export { mediaDownloadWorkflow } from './media.js';
