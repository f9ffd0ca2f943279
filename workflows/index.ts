export { conversationWorkflow } from './conversation.js';
export { pulseCampaignWorkflow } from './pulse.js';
