/**
 * Conversation workflow ids are built from internal ids only, never from a phone number,
 * because workflow ids are visible in the Temporal UI, in logs and in metrics.
 */
export function conversationWorkflowId(tenantId: string, channelId: string, contactId: string): string {
  return `conversation/${tenantId}/${channelId}/${contactId}`;
}

export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;
export const E164_PATTERN = /^\+[1-9]\d{7,14}$/;
