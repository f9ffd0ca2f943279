import { isIP } from 'node:net';
import { z } from 'zod';
import { isEgressAllowEntry } from './egress-allow.js';

const port = z.coerce.number().int().min(1).max(65535);
const optionalString = z.string().trim().min(1).optional();

/** fastify's `trustProxy`: off, every hop, a hop count, or the proxies' addresses and CIDRs. */
function parseTrustProxy(value: string, ctx: z.RefinementCtx): boolean | number | string[] {
  const v = value.trim().toLowerCase();
  if (v === 'false' || v === 'off') return false;
  if (v === 'true' || v === 'on') return true;
  if (/^\d+$/.test(v)) return Number(v);
  const entries = v.split(',').map((e) => e.trim());
  const bad = entries.find((e) => !isProxyEntry(e));
  if (bad === undefined) return entries;
  ctx.addIssue({ code: 'custom', message: 'must be true, false, a hop count, or comma-separated addresses/CIDRs' });
  return z.NEVER;
}

function isProxyEntry(entry: string): boolean {
  const [address, bits, extra] = entry.split('/');
  const family = isIP(address);
  if (!family || extra !== undefined) return false;
  return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

/** Every setting Parley reads from the environment. Nothing else touches process.env. */
export const configSchema = z.object({
  PORT: port.default(3000).describe('Port the API listens on.'),
  HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe('Address the API listens on; set `0.0.0.0` to accept connections from other machines (containers do).'),
  ADMIN_API_KEY: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .describe(
      'Operator key: creates tenants and can act on every tenant. Unset: generated once into `DATA_DIR/secrets.json` (field `admin_api_key`). Set it in every real deployment.',
    ),
  DATABASE_URL: z
    .string()
    .url('must be a postgres:// URL')
    .optional()
    .describe(
      'PostgreSQL server (`postgres://user:password@host:5432/db`). Unset: `npm start` runs an embedded PostgreSQL under `DATA_DIR`. Required by `npm run api`, `npm run worker` and `npm run migrate`.',
    ),
  TEMPORAL_ADDRESS: optionalString.describe(
    '`host:port` of a Temporal frontend. Unset: `npm start` runs a Temporal dev server. Required by `npm run api` and `npm run worker`.',
  ),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default').describe('Temporal namespace every workflow and Schedule lives in.'),
  TEMPORAL_TASK_QUEUE: z
    .string()
    .min(1)
    .default('parley-conversations')
    .describe('Task queue of the conversation worker; the API and every worker replica must agree on it.'),
  TEMPORAL_PORT: port.default(7233).describe('gRPC port of the Temporal dev server `npm start` runs (ignored with `TEMPORAL_ADDRESS`).'),
  TEMPORAL_UI_PORT: port
    .default(8233)
    .describe('Web UI port of the Temporal dev server `npm start` runs (ignored with `TEMPORAL_ADDRESS`).'),
  TEMPORAL_CLI: optionalString.describe(
    'Path to the `temporal` binary. Unset: `temporal` on `PATH`, then `~/.cache/parley/bin/temporal`, else the project installs it there (`npm run temporal:install`).',
  ),
  DATA_DIR: z
    .string()
    .min(1)
    .default('./data')
    .describe("State of the single-machine setup: generated secrets, Temporal's SQLite file, the embedded PostgreSQL."),
  PARLEY_ENCRYPTION_KEY: optionalString.describe(
    'AES-256-GCM keyring `kid:base64key[,kid:base64key…]`: the first key encrypts, every key decrypts (database columns and Temporal payloads). Unset: generated once into `DATA_DIR/secrets.json` (field `encryption_key`). Set it in every real deployment and keep it safe.',
  ),
  PARLEY_WORKFLOW_BUNDLE: optionalString.describe(
    'A prebuilt workflow bundle for the worker (the Docker image and the test runner make one). Unset: the worker bundles the workflows at start.',
  ),
  EMBEDDED_PG_PORT: port
    .default(54329)
    .describe('Port of the embedded PostgreSQL `npm start` runs without `DATABASE_URL` (a free port if taken).'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino log level of the API and the worker.'),
  CONVERSATION_DEBOUNCE_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(60_000)
    .default(0)
    .describe(
      'Wait this long for more messages before answering a burst as one turn; a tenant overrides it with `PATCH …/settings {"debounce_ms"}`. 0 answers at once and folds messages that arrive while a reply is being produced into the next turn.',
    ),
  CONVERSATION_WINDOW_S: z.coerce
    .number()
    .int()
    .min(1)
    .default(24 * 60 * 60)
    .describe("Inactivity after which a conversation workflow closes: WhatsApp's 24-hour customer-service window."),
  CONVERSATION_TURNS_PER_RUN: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(200)
    .describe('Turns a conversation run takes before it continues as new (memory is carried over), so its history stays small.'),
  SANDBOX_LATENCY_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(60_000)
    .default(0)
    .describe('Simulated send latency of the sandbox provider, for load tests and failure drills.'),
  WORKFLOW_WATCHDOG: z
    .enum(['per-thread', 'per-call'])
    .default('per-thread')
    .describe(
      "How a worker stops workflow code that never yields: `per-thread` is one watch per workflow thread (`worker/workflow-watchdog.cjs`, preloaded by `npm run worker`); `per-call` is Node's watchdog thread per call, the Temporal SDK's default, at several times the CPU cost.",
    ),
  RELAY_SWEEP_MS: z.coerce
    .number()
    .int()
    .min(10)
    .max(60_000)
    .default(500)
    .describe('How often the outbox relay looks for accepted messages not yet handed to Temporal.'),
  OPS_API_KEY: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .describe(
      'A key that opens only the codec endpoint: for operators who may read decrypted Temporal payloads but must not manage tenants. Unset: only the admin key opens it.',
    ),
  CODEC_CORS_ORIGINS: z
    .string()
    .default('http://localhost:8233,http://127.0.0.1:8233')
    .describe("Browser origins (comma-separated) allowed to call the codec endpoint: your Temporal Web UI's origin."),
  PARLEY_PAYLOAD_CODEC: z
    .enum(['on', 'off'])
    .default('on')
    .describe(
      "Benchmark only: `off` leaves Temporal payloads unencrypted so `npm run bench:codec` can measure the codec's cost. Never in production.",
    ),
  RATE_LIMIT_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(0)
    .default(60_000)
    .describe('Requests per API key (per address before authentication) per minute, on each API replica; 0 turns the limit off.'),
  AUTH_FAILURES_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(0)
    .default(30)
    .describe(
      'Failed authentications (401) one client address may cause per minute, on each API replica; past it every request from that address answers 429 until the minute ends. 0 turns the limit off.',
    ),
  TRUST_PROXY: z
    .string()
    .transform((v, ctx) => parseTrustProxy(v, ctx))
    .default(false)
    .describe(
      'Which reverse proxies may name the client address in X-Forwarded-For (used by rate limits and logs): `false` (ignore the header), `true` (trust every hop), a hop count (`1`), or comma-separated proxy addresses/CIDRs (`10.0.0.0/8,127.0.0.1`).',
    ),
  RETENTION_PURGE_EVERY: z
    .string()
    .regex(/^\d+[smhd]$/, 'must be a duration like 30m, 1h or 1d')
    .default('1h')
    .describe('Interval of the retention purge Schedule, e.g. `15m`, `1h`, `1d`.'),
  QUEUE_LEASE_S: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60 * 60)
    .default(120)
    .describe('Legacy n8n queue: how long a claimed job is leased before it is handed out again.'),
  AI_REQUEST_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(300_000)
    .default(20_000)
    .describe('Timeout of one LLM or embeddings request; the activity retries 429, 5xx and timeouts, then answers without the LLM.'),
  KNOWLEDGE_UPLOAD_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(200 * 1024 * 1024)
    .default(20 * 1024 * 1024)
    .describe('Largest knowledge document `POST …/knowledge/documents` accepts (JSON or multipart).'),
  PUBLIC_BASE_URL: z
    .string()
    .url('must be an http(s) URL')
    .optional()
    .describe(
      'The URL providers call Parley on (e.g. `https://parley.example.com`). Set it behind a proxy: Twilio signs the full URL it called, and Twilio sends then carry a status callback to it. Unset: the URL is rebuilt from the request.',
    ),
  META_GRAPH_URL: z
    .string()
    .url()
    .default('https://graph.facebook.com')
    .describe("Meta Graph API endpoint; a channel's `api_base_url` overrides it."),
  META_API_VERSION: z
    .string()
    .regex(/^v\d+\.\d+$/, 'must look like v21.0')
    .default('v21.0')
    .describe('Meta Graph API version used for sends and media.'),
  TWILIO_API_URL: z
    .string()
    .url()
    .default('https://api.twilio.com')
    .describe("Twilio API endpoint; a channel's `api_base_url` overrides it."),
  INFOBIP_API_URL: z
    .string()
    .url()
    .default('https://api.infobip.com')
    .describe("Infobip API endpoint; per-account hosts go in a channel's `api_base_url`."),
  PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000).describe('Timeout of one provider HTTP request.'),
  DATA_WORKER_SOURCES_FILE: optionalString.describe(
    "`npm run data-worker` only: a JSON file with the tenant's data sources and credentials (the `PUT …/data-sources` body); `--sources <file>` does the same.",
  ),
  DATA_WORKER_SOURCES: optionalString.describe(
    '`npm run data-worker` only: the same data sources as inline JSON (`{"data_sources":[…]}`).',
  ),
  PARLEY_URL: z
    .string()
    .url('must be an http(s) URL')
    .optional()
    .describe(
      "`npm run data-worker` only: Parley's API (e.g. https://parley.example.com), where the data worker pulls its lookups and answers them.",
    ),
  PARLEY_DATA_WORKER_KEY: optionalString.describe(
    '`npm run data-worker` only: an API key of that one tenant holding the `data_worker` scope (`POST /routes/tenants/{id}/keys`).',
  ),
  DATA_WORKER_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(200)
    .default(8)
    .describe('`npm run data-worker` only: lookups the data worker runs at once.'),
  DATABASE_MIGRATION_URL: z
    .string()
    .url('must be a postgres:// URL')
    .optional()
    .describe(
      'Migrations run on this URL (the schema owner role) when set; DATABASE_URL is then the runtime role, which cannot change the schema.',
    ),
  EGRESS_ALLOW: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().refine(isEgressAllowEntry, 'must be a CIDR (10.0.0.0/8), an address, or host:port')))
    .describe(
      "Destinations opened to tenant-configured URLs and hosts beyond the public internet, comma-separated: CIDRs, addresses, host:port. Parley's own services and cloud metadata stay refused.",
    ),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  /** The raw values of the settings that failed, for formatConfigError (config-errors.ts). */
  readonly received: Record<string, string | undefined>;
  constructor(
    readonly issues: z.core.$ZodIssue[],
    env: Record<string, string | undefined> = {},
  ) {
    super('Invalid configuration: ' + issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`).join('; '));
    this.name = 'ConfigError';
    this.received = Object.fromEntries(issues.map((i) => [String(i.path[0]), env[String(i.path[0])]]));
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) throw new ConfigError(parsed.error.issues, cleaned);
  return parsed.data;
}
