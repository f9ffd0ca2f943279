import type pg from 'pg';
import type { Config } from './config.js';
import { Keyring } from './crypto.js';
import { createDb, createPool, type Db } from './db/client.js';
import { migrate } from './db/migrate.js';
import { createProviders, type Providers } from './providers/index.js';
import { resolveSecrets } from './secrets.js';

export interface Runtime {
  pool: pg.Pool;
  db: Db;
  keyring: Keyring;
  providers: Providers;
  adminApiKey: string;
}

/** The shared dependencies of the API and the worker: database, keys and providers. */
export async function createRuntime(config: Config, databaseUrl: string, opts: { poolSize?: number } = {}): Promise<Runtime> {
  const secrets = await resolveSecrets(config);
  const keyring = new Keyring(secrets.encryptionKey);
  const pool = createPool(databaseUrl, opts.poolSize);
  await migrate(pool);
  const db = createDb(pool);
  const providers = createProviders({
    db,
    keyring,
    sandboxLatencyMs: config.SANDBOX_LATENCY_MS,
    settings: {
      timeoutMs: config.PROVIDER_TIMEOUT_MS,
      metaGraphUrl: config.META_GRAPH_URL,
      metaApiVersion: config.META_API_VERSION,
      twilioApiUrl: config.TWILIO_API_URL,
      infobipApiUrl: config.INFOBIP_API_URL,
      publicBaseUrl: config.PUBLIC_BASE_URL,
    },
  });
  return { pool, db, keyring, providers, adminApiKey: secrets.adminApiKey };
}

export function requireSetting(value: string | undefined, name: string, why: string): string {
  if (!value) throw new Error(`${name} is required ${why}`);
  return value;
}
