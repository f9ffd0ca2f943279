import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { Config } from '../core/platform/config.js';
import type { Keyring } from '../core/platform/crypto.js';
import type { Db } from '../core/db/client.js';
import type { OutboxRelay } from '../core/messaging/outbox-relay.js';
import type { Providers } from '../core/providers/index.js';

export interface ApiDeps {
  config: Config;
  pool: pg.Pool;
  db: Db;
  keyring: Keyring;
  providers: Providers;
  temporal: Client;
  relay: Pick<OutboxRelay, 'kick'>;
  adminApiKey: string;
}
