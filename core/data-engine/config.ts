import { z } from 'zod';
import { assertEgressAllowed, assertHostAllowed } from '../platform/egress.js';
import { codePlaceholders, sqlCodeOnly, sqlGuardProblem, toMysqlPlaceholders, type SqlDialect } from './sql-guard.js';

/**
 * A tenant's data source configuration: the seed's shape (`id`, `name`, `type`, `connection`,
 * `queries` / `endpoints`) plus `served_by`. Validation refuses anything that could turn a
 * customer's words into code: SQL must take `$1…$n` bound parameters, URL templates may only
 * name `{param}` placeholders, GraphQL documents take variables.
 */

export const DATA_SOURCE_TYPES = ['postgresql', 'mysql', 'rest_api', 'graphql'] as const;
export type DataSourceType = (typeof DATA_SOURCE_TYPES)[number];

/** Connection fields that are secrets: encrypted at rest, redacted on read, usable as `{name}` in headers. */
export const SECRET_FIELDS = ['password', 'api_key', 'token'] as const;
/** What GET shows instead of a secret; sending it back in a PUT keeps the stored secret. */
export const REDACTED = '********';
/** The hard ceiling on one lookup attempt (the seed's 10-second maximum). */
export const MAX_LOOKUP_TIMEOUT_MS = 10_000;

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const sourceId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'must be 1-100 letters, digits, _ . or -');

const connectionSchema = z
  .object({
    // SQL
    host: z.string().trim().min(1).max(255).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    database: z.string().trim().min(1).max(255).optional(),
    username: z.string().min(1).max(255).optional(),
    ssl: z.boolean().optional(),
    // REST / GraphQL
    base_url: z.url({ protocol: /^https?$/ }).optional(),
    url: z.url({ protocol: /^https?$/ }).optional(),
    headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,100}$/, 'must be a header name'), z.string().max(4096)).optional(),
    // secrets
    password: z.string().max(1024).optional(),
    api_key: z.string().max(4096).optional(),
    token: z.string().max(4096).optional(),
    /** One attempt's timeout; the activity retries within the 10-second budget. */
    timeout_ms: z.number().int().min(100).max(MAX_LOOKUP_TIMEOUT_MS).optional(),
  })
  .strict();
export type Connection = z.infer<typeof connectionSchema>;

const endpointSchema = z.union([
  z.string().min(1).max(2048),
  z.object({ path: z.string().min(1).max(2048), method: z.enum(['GET', 'POST']).default('GET') }).strict(),
]);

const queryName = z.string().regex(IDENT, 'query names must be identifiers');

export const dataSourceSchema = z
  .object({
    id: sourceId,
    name: z.string().trim().min(1).max(200),
    type: z.enum(DATA_SOURCE_TYPES),
    /** `tenant_worker`: the tenant's own data worker holds the connection and runs the lookups. */
    served_by: z.enum(['parley', 'tenant_worker']).default('parley'),
    connection: connectionSchema.default({}),
    queries: z.record(queryName, z.string().min(1).max(10_000)).optional(),
    endpoints: z.record(queryName, endpointSchema).optional(),
  })
  .strict()
  .superRefine((source, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const c = source.connection;
    const parleyServed = source.served_by === 'parley';
    if (source.type === 'postgresql' || source.type === 'mysql') {
      if (source.endpoints) issue(['endpoints'], `a ${source.type} source has queries, not endpoints`);
      if (!source.queries || Object.keys(source.queries).length === 0) issue(['queries'], 'at least one named query is required');
      if (parleyServed) for (const f of ['host', 'database', 'username'] as const) if (!c[f]) issue(['connection', f], 'required');
      for (const [name, text] of Object.entries(source.queries ?? {})) {
        const problem = checkSql(text, source.type);
        if (problem) issue(['queries', name], problem);
      }
    } else if (source.type === 'rest_api') {
      if (source.queries) issue(['queries'], 'a rest_api source has endpoints, not queries');
      if (!source.endpoints || Object.keys(source.endpoints).length === 0) issue(['endpoints'], 'at least one endpoint is required');
      if (parleyServed && !c.base_url) issue(['connection', 'base_url'], 'required');
      for (const [name, ep] of Object.entries(source.endpoints ?? {})) {
        const problem = checkUrlTemplate(typeof ep === 'string' ? ep : ep.path);
        if (problem) issue(['endpoints', name], problem);
      }
    } else {
      if (source.endpoints) issue(['endpoints'], 'a graphql source has queries (GraphQL documents), not endpoints');
      if (!source.queries || Object.keys(source.queries).length === 0) issue(['queries'], 'at least one named query is required');
      if (parleyServed && !c.url) issue(['connection', 'url'], 'required');
      for (const [name, doc] of Object.entries(source.queries ?? {})) {
        const problem = checkGraphql(doc);
        if (problem) issue(['queries', name], problem);
      }
    }
    for (const [header, value] of Object.entries(c.headers ?? {})) {
      for (const p of placeholders(value)) {
        if (!(SECRET_FIELDS as readonly string[]).includes(p)) {
          issue(
            ['connection', 'headers', header],
            `unknown placeholder {${p}}; headers may use ${SECRET_FIELDS.map((s) => `{${s}}`).join(', ')}`,
          );
        } else if (c[p as (typeof SECRET_FIELDS)[number]] === undefined) {
          issue(['connection', 'headers', header], `placeholder {${p}} needs connection.${p}`);
        }
      }
    }
  });
export type DataSourceConfig = z.infer<typeof dataSourceSchema>;

export const dataSourcesSchema = z
  .object({ data_sources: z.array(dataSourceSchema).max(50) })
  .strict()
  .superRefine((body, ctx) => {
    const seen = new Set<string>();
    body.data_sources.forEach((s, i) => {
      if (seen.has(s.id)) ctx.addIssue({ code: 'custom', path: ['data_sources', i, 'id'], message: `duplicate id "${s.id}"` });
      seen.add(s.id);
    });
  });

/**
 * Configure time: every destination Parley itself would reach for these sources passes the
 * egress policy (a tenant_worker source is reached by the tenant's own worker, not by Parley).
 */
export async function checkSourceDestinations(sources: DataSourceConfig[]): Promise<void> {
  await Promise.all(
    sources.map(async (s, i) => {
      if (s.served_by !== 'parley') return;
      const c = s.connection;
      const at = `body.data_sources.${i}.connection`;
      if (s.type === 'postgresql' || s.type === 'mysql')
        await assertHostAllowed(c.host!, c.port ?? (s.type === 'mysql' ? 3306 : 5432), `${at}.host`);
      else if (s.type === 'rest_api') await assertEgressAllowed(c.base_url!, `${at}.base_url`);
      else await assertEgressAllowed(c.url!, `${at}.url`);
    }),
  );
}

/** The `$n` numbers a SQL text uses, in order of appearance (strings, quoted identifiers and comments excluded). */
export function sqlPlaceholders(text: string, dialect: SqlDialect = 'postgresql'): number[] {
  return codePlaceholders(text, dialect);
}

/** The number of parameters a SQL query takes: its highest `$n`. */
export function sqlParamCount(text: string, dialect: SqlDialect = 'postgresql'): number {
  return Math.max(0, ...sqlPlaceholders(text, dialect));
}

/** MySQL takes `?`: the configured `$n` become `?` in the code (never inside a literal). */
export function mysqlText(text: string): string {
  return toMysqlPlaceholders(text);
}

export function checkSql(text: string, dialect: SqlDialect = 'postgresql'): string | undefined {
  const guard = sqlGuardProblem(text, dialect);
  if (guard) return guard;
  const interpolation = /\$\{|\{\{|\{[A-Za-z_]\w*\}|%\(?\w*\)?s\b|:[A-Za-z_]\w*|\?/;
  const { code, literals } = sqlCodeOnly(text, dialect);
  if (literals.some((l) => /\$\d+|\{|%s/.test(l)))
    return 'a placeholder inside a quoted string is string interpolation; use a bare $1, $2… bound parameter';
  if (interpolation.test(code.replace(/::[A-Za-z_]\w*/g, ''))) {
    return 'string interpolation is not allowed; use $1, $2… bound parameters';
  }
  const used = new Set(sqlPlaceholders(text, dialect));
  for (let n = 1; n <= sqlParamCount(text, dialect); n++)
    if (!used.has(n)) return `placeholders must be $1…$n without gaps: $${n} is missing`;
  return undefined;
}

/** `{name}` placeholders of a template. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1]);
}

export function checkUrlTemplate(template: string): string | undefined {
  if (!template.startsWith('/')) return 'must be a path starting with "/" (relative to connection.base_url)';
  const stripped = template.replace(/\{[^{}]*\}/g, '');
  if (/[{}]/.test(stripped)) return 'unbalanced { } in template';
  for (const p of placeholders(template)) {
    if (!IDENT.test(p)) return `unknown placeholder {${p}}: placeholders are parameter names such as {order_id}`;
    if ((SECRET_FIELDS as readonly string[]).includes(p))
      return `unknown placeholder {${p}}: credentials belong in connection.headers, never in the URL`;
  }
  return undefined;
}

export function checkGraphql(doc: string): string | undefined {
  if (/\$\{|\{\{|%s/.test(doc)) return 'string interpolation is not allowed; declare GraphQL variables ($sku: String!) instead';
  const body = doc.replace(/#[^\n]*/g, '').trim();
  if (/^(mutation|subscription)\b/.test(body)) return 'only read queries can be configured, not mutations or subscriptions';
  if (!/^(query\b|\{)/.test(body)) return 'must be a GraphQL query document';
  return undefined;
}

/** The GraphQL variables a document declares (`$sku`). */
export function graphqlVariables(doc: string): string[] {
  const header = /^\s*query\b[^({]*\(([^)]*)\)/.exec(doc.replace(/#[^\n]*/g, ''));
  return header ? [...header[1].matchAll(/\$([A-Za-z_]\w*)/g)].map((m) => m[1]) : [];
}

/**
 * The parameters a named query or endpoint needs, or an error message when the source has
 * no such query. SQL parameters are positional ($1…$n); the intent's `params` order fills them.
 */
export function queryNeeds(source: DataSourceConfig, query: string): { positional: number } | { named: string[] } | { error: string } {
  if (source.type === 'rest_api') {
    const ep = source.endpoints?.[query];
    if (ep === undefined) return { error: `data source "${source.id}" has no endpoint "${query}"` };
    return { named: placeholders(typeof ep === 'string' ? ep : ep.path) };
  }
  const text = source.queries?.[query];
  if (text === undefined) return { error: `data source "${source.id}" has no query "${query}"` };
  if (source.type === 'graphql') return { named: graphqlVariables(text) };
  return { positional: sqlParamCount(text, source.type === 'mysql' ? 'mysql' : 'postgresql') };
}

export interface SplitSource {
  /** Safe to store in clear and to show. */
  config: Omit<DataSourceConfig, 'id' | 'name' | 'type' | 'served_by'>;
  /** Encrypted at rest. */
  secrets: Secrets;
}
export interface Secrets {
  password?: string;
  api_key?: string;
  token?: string;
  headers?: Record<string, string>;
}

/** Separates the secrets (passwords, keys, every header value) from the rest of a source. */
export function splitSecrets(source: DataSourceConfig): SplitSource {
  const { password, api_key, token, headers, ...connection } = source.connection;
  const secrets: Secrets = {};
  if (password !== undefined) secrets.password = password;
  if (api_key !== undefined) secrets.api_key = api_key;
  if (token !== undefined) secrets.token = token;
  if (headers) secrets.headers = headers;
  return {
    config: {
      connection: { ...connection, ...(headers ? { headers: Object.fromEntries(Object.keys(headers).map((h) => [h, REDACTED])) } : {}) },
      ...(source.queries ? { queries: source.queries } : {}),
      ...(source.endpoints ? { endpoints: source.endpoints } : {}),
    },
    secrets,
  };
}

/** The stored secrets put back into a source (used by the lookup worker, never returned by the API). */
export function joinSecrets(
  config: SplitSource['config'],
  head: Pick<DataSourceConfig, 'id' | 'name' | 'type' | 'served_by'>,
  secrets: Secrets,
): DataSourceConfig {
  const connection = { ...config.connection, ...secrets };
  if (!secrets.headers) delete connection.headers;
  return { ...head, ...config, connection } as DataSourceConfig;
}

/** What GET shows: the stored config with a marker where each secret was. */
export function redactedView(config: SplitSource['config'], secrets: Secrets): Record<string, unknown> {
  const connection: Record<string, unknown> = { ...config.connection };
  for (const f of SECRET_FIELDS) if (secrets[f] !== undefined) connection[f] = REDACTED;
  return { ...config, connection };
}

/** Every secret value of a source, so error messages can be scrubbed of them. */
export function secretValues(secrets: Secrets): string[] {
  return [secrets.password, secrets.api_key, secrets.token, ...Object.values(secrets.headers ?? {})].filter(
    (v): v is string => typeof v === 'string' && v.length >= 4,
  );
}

export function scrub(message: string, secrets: string[]): string {
  let out = message;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}
