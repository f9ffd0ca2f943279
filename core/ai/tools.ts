/**
 * Function-calling tools the LLM may use while answering. The tenant is bound by the
 * caller in `ToolContext`, never taken from the model's arguments, so a tool can only
 * reach the tenant whose conversation is being answered.
 */
export interface ToolContext {
  tenantId: string;
  conversationId: string | null;
}

export interface AiTool {
  /** `^[a-zA-Z0-9_-]{1,64}$`, unique among the tenant's tools. */
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
  /** Arguments come from the model: validate them; the result is sent back to the model as JSON. */
  run(ctx: ToolContext, args: Record<string, unknown>): Promise<unknown>;
}

/** Where tools come from: the Data Engine plugs its per-tenant lookups in as one source. */
export interface AiToolSource {
  toolsFor(tenantId: string): Promise<AiTool[]>;
}

/** Built into every conversation: ends the bot's part and asks for a person. */
export const HANDOVER_TOOL = {
  name: 'handover',
  description:
    'Hand the conversation over to a human colleague. Use it when the customer asks for a person, is upset, ' +
    'or when neither the knowledge excerpts nor the other tools answer the question.',
  parameters: {
    type: 'object',
    properties: { reason: { type: 'string', description: 'Short reason for the colleague' } },
    required: ['reason'],
    additionalProperties: false,
  },
} as const;

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export async function toolsForTenant(sources: AiToolSource[], tenantId: string): Promise<Map<string, AiTool>> {
  const tools = new Map<string, AiTool>();
  for (const source of sources) {
    for (const tool of await source.toolsFor(tenantId)) {
      if (!TOOL_NAME.test(tool.name) || tool.name === HANDOVER_TOOL.name || tools.has(tool.name)) continue;
      tools.set(tool.name, tool);
    }
  }
  return tools;
}
