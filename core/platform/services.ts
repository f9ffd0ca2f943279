import type pg from 'pg';
import type { Config } from './config.js';
import { Keyring } from './crypto.js';
import { createDb, createPool, type Db } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { hashStoredProviderIds } from '../messaging/provider-ids.js';
import { createProviders, type Providers } from '../providers/index.js';
import { resolveSecrets } from './secrets.js';
import { EgressPolicy, installEgressPolicy, ownServices } from './egress.js';

export interface Services {
  databaseUrl: string;
  pool: pg.Pool;
  db: Db;
  keyring: Keyring;
  providers: Providers;
  adminApiKey: string;
}

/** The shared dependencies of the API and the worker: database, keys and providers. */
export async function createServices(
  config: Config,
  databaseUrl: string,
  opts: { poolSize?: number } = {},
): Promise<Services & { config: Config }> {
  const secrets = await resolveSecrets(config);
  installEgressPolicy(new EgressPolicy({ allow: config.EGRESS_ALLOW, ownServices: ownServices(config, databaseUrl) }));
  const keyring = new Keyring(secrets.encryptionKey);
  const pool = createPool(databaseUrl, opts.poolSize);
  if (config.DATABASE_MIGRATION_URL) {
    // The runtime role cannot change the schema: the owner role migrates, on its own connection.
    const owner = createPool(config.DATABASE_MIGRATION_URL, 1);
    await migrate(owner).finally(() => owner.end());
  } else await migrate(pool);
  // Provider ids a release before migration 1400 stored in clear (SQL holds no key to hash them).
  await hashStoredProviderIds(pool, keyring);
  return withPool({ config, databaseUrl, keyring, adminApiKey: secrets.adminApiKey }, pool);
}

/**
 * The same runtime on its own connection pool. The API, the relay and the worker each get one
 * when they share a process, so a worker backlog can never starve webhook acknowledgements.
 */
export function forkServices(runtime: Services & { config: Config }, poolSize: number): Services & { config: Config } {
  return withPool(runtime, createPool(runtime.databaseUrl, poolSize));
}

function withPool(base: { config: Config; databaseUrl: string; keyring: Keyring; adminApiKey: string }, pool: pg.Pool) {
  const db = createDb(pool);
  const providers = createProviders({
    db,
    keyring: base.keyring,
    sandboxLatencyMs: base.config.SANDBOX_LATENCY_MS,
    settings: {
      timeoutMs: base.config.PROVIDER_TIMEOUT_MS,
      metaGraphUrl: base.config.META_GRAPH_URL,
      metaApiVersion: base.config.META_API_VERSION,
      twilioApiUrl: base.config.TWILIO_API_URL,
      infobipApiUrl: base.config.INFOBIP_API_URL,
      publicBaseUrl: base.config.PUBLIC_BASE_URL,
    },
  });
  return { config: base.config, databaseUrl: base.databaseUrl, pool, db, keyring: base.keyring, providers, adminApiKey: base.adminApiKey };
}

export function requireSetting(value: string | undefined, name: string, why: string): string {
  if (!value) throw new Error(`${name} is required ${why}`);
  return value;
}
