export { conversationWorkflow } from './conversation.js';
export { retentionPurgeWorkflow } from './retention.js';
export { pulseCampaignWorkflow } from './pulse.js';
export { knowledgeIngestWorkflow } from './knowledge.js';
export { mediaDownloadWorkflow } from './media.js';
export { dataLookupWorkflow, dataSourceTestWorkflow } from './data.js';
export { eventDeliveryWorkflow } from './events.js';
