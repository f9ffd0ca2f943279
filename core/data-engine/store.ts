import { and, asc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { AccessLogEntry } from '../../contracts/data-lookup.js';
import type { Keyring } from '../platform/crypto.js';
import type { Db } from '../db/client.js';
import { dataAccessLogs, dataIntents, dataSources } from '../db/schema.js';
import { emitEvent } from '../events/emit.js';
import { badRequest } from '../platform/errors.js';
import { compileLinear, type LinearRegExp } from '../platform/linear-regex.js';
import {
  checkSourceDestinations,
  joinSecrets,
  queryNeeds,
  REDACTED,
  redactedView,
  SECRET_FIELDS,
  splitSecrets,
  type DataSourceConfig,
  type Secrets,
  type SplitSource,
} from './config.js';

/** The customer's own phone number, always available to intents as a parameter. */
export const CUSTOMER_PHONE = 'customer_phone';
/** Customer text longer than this is not matched against tenant patterns (bounds the cost of a match). */
const MAX_MATCH_INPUT = 2000;

export interface StoredSource {
  source: DataSourceConfig;
  servedBy: 'parley' | 'tenant_worker';
}

function decryptSecrets(keyring: Keyring, tenantId: string, enc: string | null): Secrets {
  return enc ? (JSON.parse(keyring.decrypt(enc, { tenantId, column: dataSources.credentialsEnc })) as Secrets) : {};
}

/**
 * Replaces the tenant's data sources. A secret sent as the redaction marker keeps the stored
 * value (so a GET → edit → PUT round trip works); any other value rotates it.
 */
export async function replaceDataSources(db: Db, keyring: Keyring, tenantId: string, sources: DataSourceConfig[]): Promise<number> {
  await checkSourceDestinations(sources);
  return db.transaction(async (tx) => {
    const existing = await tx.select().from(dataSources).where(eq(dataSources.tenantId, tenantId));
    const stored = new Map(existing.map((r) => [r.id, decryptSecrets(keyring, r.tenantId, r.credentialsEnc)]));
    const rows = sources.map((source, position) => {
      const { config, secrets } = splitSecrets(source);
      const old = stored.get(source.id) ?? {};
      const keep = (value: string | undefined, previous: string | undefined, path: string) => {
        if (value !== REDACTED) return value;
        if (previous === undefined)
          throw badRequest(
            'VALIDATION_FAILED',
            `body.data_sources.${position}.${path}: "${REDACTED}" keeps a stored secret, but none is stored`,
          );
        return previous;
      };
      const merged: Secrets = {};
      for (const f of SECRET_FIELDS) {
        const v = keep(secrets[f], old[f], `connection.${f}`);
        if (v !== undefined) merged[f] = v;
      }
      if (secrets.headers) {
        merged.headers = Object.fromEntries(
          Object.entries(secrets.headers).map(([h, v]) => [h, keep(v, old.headers?.[h], `connection.headers.${h}`)!]),
        );
      }
      return {
        tenantId,
        id: source.id,
        name: source.name,
        type: source.type,
        servedBy: source.served_by,
        config: config as Record<string, unknown>,
        credentialsEnc:
          Object.keys(merged).length > 0 ? keyring.encrypt(JSON.stringify(merged), { tenantId, column: dataSources.credentialsEnc }) : null,
        position,
      };
    });
    await tx.delete(dataSources).where(eq(dataSources.tenantId, tenantId));
    if (rows.length > 0) await tx.insert(dataSources).values(rows);
    return rows.length;
  });
}

/** The tenant's sources as GET shows them: every secret replaced by the marker. */
export async function listDataSources(db: Db, keyring: Keyring, tenantId: string): Promise<Record<string, unknown>[]> {
  const rows = await db.select().from(dataSources).where(eq(dataSources.tenantId, tenantId)).orderBy(asc(dataSources.position));
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    type: r.type,
    served_by: r.servedBy,
    ...redactedView(r.config as SplitSource['config'], decryptSecrets(keyring, r.tenantId, r.credentialsEnc)),
    updated_at: r.updatedAt.toISOString(),
  }));
}

/** One source with its secrets, for the worker that runs the lookup. Always scoped by tenant. */
export async function loadDataSource(db: Db, keyring: Keyring, tenantId: string, id: string): Promise<StoredSource | undefined> {
  const [r] = await db
    .select()
    .from(dataSources)
    .where(and(eq(dataSources.tenantId, tenantId), eq(dataSources.id, id)));
  if (!r) return undefined;
  const source = joinSecrets(
    r.config as SplitSource['config'],
    { id: r.id, name: r.name, type: r.type, served_by: r.servedBy },
    decryptSecrets(keyring, r.tenantId, r.credentialsEnc),
  );
  return { source, servedBy: r.servedBy };
}

const PATTERN_FLAGS = 'iu';

/** Named capture groups of a pattern (including ones in alternatives that did not match). */
function captureNames(pattern: string): string[] {
  const withEmpty = compileLinear(`${pattern}|`, PATTERN_FLAGS);
  return 'error' in withEmpty ? [] : Object.keys(withEmpty.exec('')?.groups ?? {});
}

/**
 * Compiled tenant patterns by source. Bounded, since every tenant's patterns pass through and
 * each keeps its RE2 automaton cache.
 */
const compiled = new Map<string, LinearRegExp | null>();
const MAX_COMPILED = 500;

/** A stored pattern on RE2; null when RE2 refuses it (a row written before patterns were checked never matches). */
function compiledPattern(pattern: string): LinearRegExp | null {
  let re = compiled.get(pattern);
  if (re === undefined) {
    const c = compileLinear(pattern, PATTERN_FLAGS);
    re = 'error' in c ? null : c;
    if (compiled.size >= MAX_COMPILED) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

export const intentSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'must be 1-100 letters, digits, _ . or -'),
    patterns: z
      .array(
        z
          .string()
          .min(1)
          .max(500)
          .superRefine((p, ctx) => {
            const re = compileLinear(p, PATTERN_FLAGS);
            if ('error' in re) {
              ctx.addIssue({
                code: 'custom',
                message: `not a pattern Parley runs (RE2 syntax: no backreferences or lookarounds): ${re.error}`,
              });
            }
          }),
      )
      .min(1)
      .max(20),
    data_source: z.string().min(1).max(100),
    query: z.string().min(1).max(100),
    params: z
      .array(z.string().regex(/^[A-Za-z_]\w{0,62}$/, 'must be an identifier'))
      .max(10)
      .default([]),
    reply_template: z.string().min(1).max(4096),
    fallback_message: z.string().trim().min(1).max(4096).optional(),
    not_found_message: z.string().trim().min(1).max(4096).optional(),
  })
  .strict()
  .superRefine((intent, ctx) => {
    intent.patterns.forEach((p, i) => {
      if ('error' in compileLinear(p, PATTERN_FLAGS)) return;
      const names = captureNames(p);
      for (const param of intent.params) {
        if (param !== CUSTOMER_PHONE && !names.includes(param)) {
          ctx.addIssue({
            code: 'custom',
            path: ['patterns', i],
            message: `needs a named capture (?<${param}>…) for param "${param}" (or use "${CUSTOMER_PHONE}")`,
          });
        }
      }
    });
  });
export type IntentConfig = z.infer<typeof intentSchema>;

/** Checks intents against the tenant's own data sources, then replaces them. */
export async function replaceIntents(db: Db, keyring: Keyring, tenantId: string, intents: IntentConfig[]): Promise<number> {
  const seen = new Set<string>();
  for (const [i, intent] of intents.entries()) {
    const at = `body.intents.${i}`;
    if (seen.has(intent.id)) throw badRequest('VALIDATION_FAILED', `${at}.id: duplicate id "${intent.id}"`);
    seen.add(intent.id);
    // Scoped by tenant: another tenant's source with the same id is simply not found.
    const stored = await loadDataSource(db, keyring, tenantId, intent.data_source);
    if (!stored) throw badRequest('VALIDATION_FAILED', `${at}.data_source: no data source "${intent.data_source}" for this tenant`);
    const needs = queryNeeds(stored.source, intent.query);
    if ('error' in needs) throw badRequest('VALIDATION_FAILED', `${at}.query: ${needs.error}`);
    if ('positional' in needs && needs.positional !== intent.params.length) {
      throw badRequest(
        'VALIDATION_FAILED',
        `${at}.params: query "${intent.query}" takes ${needs.positional} parameter(s) ($1…$${needs.positional}), got ${intent.params.length}`,
      );
    }
    if ('named' in needs) {
      const missing = needs.named.filter((n) => !intent.params.includes(n));
      if (missing.length)
        throw badRequest('VALIDATION_FAILED', `${at}.params: "${intent.query}" needs ${missing.map((m) => `"${m}"`).join(', ')}`);
    }
  }
  await db.transaction(async (tx) => {
    await tx.delete(dataIntents).where(eq(dataIntents.tenantId, tenantId));
    if (intents.length === 0) return;
    await tx.insert(dataIntents).values(
      intents.map((intent, position) => ({
        tenantId,
        id: intent.id,
        position,
        patterns: intent.patterns,
        dataSourceId: intent.data_source,
        query: intent.query,
        params: intent.params,
        replyTemplate: intent.reply_template,
        fallbackMessage: intent.fallback_message ?? null,
        notFoundMessage: intent.not_found_message ?? null,
      })),
    );
  });
  return intents.length;
}

export type StoredIntent = typeof dataIntents.$inferSelect;

export async function listIntents(db: Db, tenantId: string): Promise<StoredIntent[]> {
  return db.select().from(dataIntents).where(eq(dataIntents.tenantId, tenantId)).orderBy(asc(dataIntents.position));
}

/**
 * The first intent (in configured order) one of whose patterns matches the text and yields
 * every parameter. `customer_phone` comes from the conversation, never from the text.
 */
export function matchIntent(
  intents: StoredIntent[],
  text: string,
  customerPhone: string | undefined,
): { intent: StoredIntent; params: Record<string, string> } | undefined {
  if (text.length > MAX_MATCH_INPUT) return undefined;
  for (const intent of intents) {
    for (const pattern of intent.patterns) {
      const m = compiledPattern(pattern)?.exec(text);
      if (!m) continue;
      const params: Record<string, string> = {};
      for (const name of intent.params) {
        const value = name === CUSTOMER_PHONE ? customerPhone : m.groups?.[name]?.trim();
        if (value) params[name] = value;
      }
      if (intent.params.every((p) => params[p] !== undefined)) return { intent, params };
    }
  }
  return undefined;
}

export async function recordAccess(db: Db, e: AccessLogEntry): Promise<void> {
  // The audit row and its lookup.failed event commit together.
  await db.transaction(async (tx) => {
    const [row] = await tx
      .insert(dataAccessLogs)
      .values({
        tenantId: e.tenantId,
        dataSourceId: e.dataSourceId,
        queryType: e.query,
        customerIdentifier: e.customerHash ?? null,
        responseTimeMs: Math.round(e.responseTimeMs),
        outcome: e.outcome,
        error: e.error?.slice(0, 1000) ?? null,
        via: e.via,
        workflowId: e.workflowId ?? null,
      })
      .returning({ id: dataAccessLogs.id });
    if (e.outcome === 'error') {
      await emitEvent(tx, {
        tenantId: e.tenantId,
        type: 'lookup.failed',
        key: String(row.id),
        data: { data_source_id: e.dataSourceId, query: e.query, via: e.via },
      });
    }
  });
}

/** The seed's monitoring query: per source and hour over the last 24 hours. */
export async function lookupMetrics(db: Db, tenantId: string) {
  const result = await db.execute<{
    data_source_id: string;
    hour: Date | string;
    avg_response_time: number;
    query_count: number;
    error_count: number;
  }>(sql`
    SELECT data_source_id,
           AVG(response_time_ms)::float8 AS avg_response_time,
           COUNT(*)::int AS query_count,
           COUNT(*) FILTER (WHERE outcome = 'error')::int AS error_count,
           DATE_TRUNC('hour', accessed_at) AS hour
    FROM ${dataAccessLogs}
    WHERE tenant_id = ${tenantId} AND accessed_at >= NOW() - INTERVAL '24 hours'
    GROUP BY data_source_id, hour
    ORDER BY hour DESC, data_source_id`);
  return result.rows.map((r) => ({
    data_source_id: r.data_source_id,
    hour: new Date(r.hour).toISOString(),
    avg_response_time: Math.round(Number(r.avg_response_time) * 10) / 10,
    query_count: Number(r.query_count),
    error_count: Number(r.error_count),
  }));
}
