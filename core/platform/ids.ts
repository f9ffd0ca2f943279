/**
 * Conversation workflow ids are built from internal ids only, never from a phone number,
 * because workflow ids are visible in the Temporal UI, in logs and in metrics.
 */
export function conversationWorkflowId(tenantId: string, channelId: string, contactId: string): string {
  return `${conversationWorkflowIdPrefix(tenantId)}${channelId}/${contactId}`;
}

/** What precedes `<channel id>/<contact id>`; inbound.ts appends those two in SQL. */
export const conversationWorkflowIdPrefix = (tenantId: string): string => `conversation/${tenantId}/`;

export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;
export const E164_PATTERN = /^\+[1-9]\d{7,14}$/;

/** The download workflow of one inbound media item (started by the webhook, erased with its contact). */
export const mediaWorkflowId = (tenantId: string, mediaId: string): string => `media/${tenantId}/${mediaId}`;
