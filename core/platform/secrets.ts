import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { Keyring, randomToken } from './crypto.js';

export interface Secrets {
  adminApiKey: string;
  encryptionKey: string;
  /** Where generated secrets live, when any were generated. */
  file?: string;
}

/**
 * Secrets come from the environment; whatever is not set there is generated once into
 * DATA_DIR/secrets.json (mode 0600), so the embedded default survives restarts.
 */
export async function resolveSecrets(config: Config): Promise<Secrets> {
  if (config.ADMIN_API_KEY && config.PARLEY_ENCRYPTION_KEY) {
    return { adminApiKey: config.ADMIN_API_KEY, encryptionKey: config.PARLEY_ENCRYPTION_KEY };
  }
  const file = path.resolve(config.DATA_DIR, 'secrets.json');
  let stored: { admin_api_key?: string; encryption_key?: string } = {};
  try {
    stored = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  const next = {
    admin_api_key: stored.admin_api_key ?? `prl_admin_${randomToken(24)}`,
    encryption_key: stored.encryption_key ?? Keyring.generateSpec(),
  };
  if (next.admin_api_key !== stored.admin_api_key || next.encryption_key !== stored.encryption_key) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
  }
  return {
    adminApiKey: config.ADMIN_API_KEY ?? next.admin_api_key,
    encryptionKey: config.PARLEY_ENCRYPTION_KEY ?? next.encryption_key,
    file,
  };
}
