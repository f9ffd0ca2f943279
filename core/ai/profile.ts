import { eq, sql } from 'drizzle-orm';
import type { Keyring } from '../platform/crypto.js';
import type { Db } from '../db/client.js';
import { aiProfiles, type AiProfileRow } from '../db/schema.js';
import { assertEgressAllowed } from '../platform/egress.js';

/** A tenant's AI settings with the provider key decrypted: only for building a client. */
export interface AiProfile {
  tenantId: string;
  baseUrl: string;
  apiKey: string;
  chatModel: string;
  embeddingModel: string;
  businessDescription: string | null;
  tone: string | null;
  language: string | null;
  temperature: number;
  monthlyTokenBudget: number | null;
  confidenceThreshold: number;
}

export interface AiProfileInput {
  base_url: string;
  api_key: string;
  chat_model: string;
  embedding_model: string;
  business_description?: string;
  tone?: string;
  language?: string;
  temperature?: number;
  monthly_token_budget?: number | null;
  confidence_threshold?: number;
}

export const DEFAULT_TEMPERATURE = 0.2;
export const DEFAULT_CONFIDENCE_THRESHOLD = 0.6;

/** Saves the profile; says whether stored embeddings are now stale (another endpoint or model). */
export async function putAiProfile(
  db: Db,
  keyring: Keyring,
  tenantId: string,
  input: AiProfileInput,
): Promise<{ embeddingsChanged: boolean }> {
  await assertEgressAllowed(input.base_url, 'body.base_url');
  const values = {
    baseUrl: input.base_url.replace(/\/+$/, ''),
    apiKeyEnc: keyring.encrypt(input.api_key, { tenantId, column: aiProfiles.apiKeyEnc }),
    chatModel: input.chat_model,
    embeddingModel: input.embedding_model,
    businessDescription: input.business_description ?? null,
    tone: input.tone ?? null,
    language: input.language ?? null,
    temperature: input.temperature ?? DEFAULT_TEMPERATURE,
    monthlyTokenBudget: input.monthly_token_budget ?? null,
    confidenceThreshold: input.confidence_threshold ?? DEFAULT_CONFIDENCE_THRESHOLD,
  };
  return db.transaction(async (tx) => {
    const [before] = await tx.select().from(aiProfiles).where(eq(aiProfiles.tenantId, tenantId)).for('update');
    await tx
      .insert(aiProfiles)
      .values({ tenantId, ...values })
      .onConflictDoUpdate({ target: aiProfiles.tenantId, set: { ...values, updatedAt: sql`now()` } });
    return { embeddingsChanged: !before || before.baseUrl !== values.baseUrl || before.embeddingModel !== values.embeddingModel };
  });
}

export async function findAiProfileRow(db: Db, tenantId: string): Promise<AiProfileRow | undefined> {
  const [row] = await db.select().from(aiProfiles).where(eq(aiProfiles.tenantId, tenantId));
  return row;
}

export async function loadAiProfile(db: Db, keyring: Keyring, tenantId: string): Promise<AiProfile | undefined> {
  const row = await findAiProfileRow(db, tenantId);
  if (!row) return undefined;
  const { apiKeyEnc, createdAt: _c, updatedAt: _u, ...rest } = row;
  return { ...rest, apiKey: keyring.decrypt(apiKeyEnc, { tenantId, column: aiProfiles.apiKeyEnc }) };
}

/** Shows enough of a key to recognise it, never enough to use it. */
export function redactKey(key: string): string {
  return key.length <= 8 ? '****' : `${key.slice(0, 3)}…${key.slice(-4)}`;
}
