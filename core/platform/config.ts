import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);
const optionalString = z.string().trim().min(1).optional();

/** Every setting Parley reads from the environment. Nothing else touches process.env. */
export const configSchema = z.object({
  PORT: port.default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  DATABASE_URL: z.string().url('must be a postgres:// URL').optional(),
  TEMPORAL_ADDRESS: optionalString,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('parley-conversations'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_CLI: optionalString,
  DATA_DIR: z.string().min(1).default('./data'),
  PARLEY_ENCRYPTION_KEY: optionalString,
  PARLEY_WORKFLOW_BUNDLE: optionalString,
  EMBEDDED_PG_PORT: port.default(54329),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Wait this long for more messages before answering a burst as one turn (per-tenant override). */
  CONVERSATION_DEBOUNCE_MS: z.coerce.number().int().min(0).max(60_000).default(0),
  /** Inactivity after which a conversation workflow closes: WhatsApp's customer-service window. */
  CONVERSATION_WINDOW_S: z.coerce
    .number()
    .int()
    .min(1)
    .default(24 * 60 * 60),
  /** Turns a conversation run takes before it continues as new (history stays small). */
  CONVERSATION_TURNS_PER_RUN: z.coerce.number().int().min(1).max(10_000).default(200),
  /** Simulated provider latency of the sandbox provider, for load tests and failure drills. */
  SANDBOX_LATENCY_MS: z.coerce.number().int().min(0).max(60_000).default(0),
  /**
   * How a worker stops workflow code that never yields: one watch per workflow thread
   * (worker/workflow-watchdog.cjs), or Node's watchdog thread per call, the SDK's default.
   */
  WORKFLOW_WATCHDOG: z.enum(['per-thread', 'per-call']).default('per-thread'),
  RELAY_SWEEP_MS: z.coerce.number().int().min(10).max(60_000).default(500),
  /** A key for operators who may decode Temporal payloads (codec endpoint) but not manage tenants. */
  OPS_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Origins allowed to call the codec endpoint from a browser (the Temporal Web UI), comma-separated. */
  CODEC_CORS_ORIGINS: z.string().default('http://localhost:8233,http://127.0.0.1:8233'),
  /** Benchmark-only: `off` sends Temporal payloads unencrypted, to measure the codec's cost. */
  PARLEY_PAYLOAD_CODEC: z.enum(['on', 'off']).default('on'),
  /** Requests per key (or per IP without a key) per minute on each API replica; 0 turns the limit off. */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(60_000),
  /** How often the retention purge runs (a Temporal Schedule interval), e.g. 1h, 15m. */
  RETENTION_PURGE_EVERY: z
    .string()
    .regex(/^\d+[smhd]$/, 'must be a duration like 30m, 1h or 1d')
    .default('1h'),
  /** Legacy n8n queue: how long a claimed job is leased before it is handed out again. */
  QUEUE_LEASE_S: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60 * 60)
    .default(120),
  /** Per-request timeout of LLM and embeddings calls; the activity retries 429/5xx/timeouts, then falls back. */
  AI_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(300_000).default(20_000),
  /** Largest knowledge document accepted by POST …/knowledge/documents (JSON or multipart). */
  KNOWLEDGE_UPLOAD_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(200 * 1024 * 1024)
    .default(20 * 1024 * 1024),
  /** The URL providers call us on (e.g. https://parley.example.com); Twilio signs the full URL it called. */
  PUBLIC_BASE_URL: z.string().url('must be an http(s) URL').optional(),
  /** Default provider endpoints; a channel's api_base_url overrides them (tests, regional endpoints). */
  META_GRAPH_URL: z.string().url().default('https://graph.facebook.com'),
  META_API_VERSION: z
    .string()
    .regex(/^v\d+\.\d+$/, 'must look like v21.0')
    .default('v21.0'),
  TWILIO_API_URL: z.string().url().default('https://api.twilio.com'),
  INFOBIP_API_URL: z.string().url().default('https://api.infobip.com'),
  /** Timeout of one provider HTTP request. */
  PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  /** `npm run data-worker`: the tenant's data sources with credentials, as a JSON file … */
  DATA_WORKER_SOURCES_FILE: optionalString,
  /** … or inline JSON (`{ "data_sources": [...] }`, the PUT data-sources shape). */
  DATA_WORKER_SOURCES: optionalString,
  /** … and the tenant's data-worker key (POST /routes/tenants/{id}/data-worker-key), base64. */
  PARLEY_DATA_WORKER_KEY: optionalString,
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
