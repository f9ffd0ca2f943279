import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { Config } from '../core/config.js';
import type { Keyring } from '../core/crypto.js';
import type { Db } from '../core/db/client.js';
import type { OutboxRelay } from '../core/outbox-relay.js';

export interface ApiDeps {
  config: Config;
  pool: pg.Pool;
  db: Db;
  keyring: Keyring;
  temporal: Client;
  relay: Pick<OutboxRelay, 'kick'>;
  adminApiKey: string;
}
