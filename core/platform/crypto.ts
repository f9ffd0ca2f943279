import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { getTableName } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { AppError } from './errors.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

/** Stable codes of KeyringError. */
export const KeyringErrorCode = {
  /** PARLEY_ENCRYPTION_KEY is malformed. */
  InvalidKey: 'ENCRYPTION_KEY_INVALID',
  /** The value is not `v1.<kid>.<data>` / `v2.<kid>.<data>`. */
  NotCiphertext: 'CIPHERTEXT_MALFORMED',
  /** The value names a key the keyring no longer holds. */
  UnknownKey: 'CIPHERTEXT_KEY_UNKNOWN',
  /** Authentication failed: the value was altered, or belongs to another tenant, table or column. */
  Rejected: 'CIPHERTEXT_REJECTED',
} as const;
export type KeyringErrorCode = (typeof KeyringErrorCode)[keyof typeof KeyringErrorCode];

/**
 * A stored value that cannot be opened. It is Parley's fault, never the caller's, so it leaves the
 * API as a 500 with its code and a message naming the column, never the value.
 */
export class KeyringError extends AppError {
  constructor(
    override readonly code: KeyringErrorCode,
    message: string,
  ) {
    super(500, code, message);
    this.name = 'KeyringError';
  }
}

/** An encrypted text column of the drizzle schema (`*_enc`); its table and name are bound into its values. */
export type EncColumn = PgColumn & { readonly _: { readonly name: `${string}_enc`; readonly dataType: 'string' } };
/** An encrypted bytea column (`*_enc`), whose key label is kept in a text column beside it. */
export type EncBytesColumn = PgColumn & { readonly _: { readonly name: `${string}_enc`; readonly dataType: 'custom' } };

/**
 * Where a column value lives: its row's tenant (null only for a row no tenant owns) and its
 * column. v2 ciphertexts carry it as AES-GCM additional data, so a value copied into another
 * tenant's row, or into another column or table, does not open there. A value that moves is
 * decrypted where it was and encrypted again where it goes.
 */
export interface SealedAt<C extends EncColumn | EncBytesColumn = EncColumn> {
  tenantId: string | null;
  column: C;
}

const columnName = (column: PgColumn) => `${getTableName(column.table)}.${column.name}`;

/** JSON keeps the parts apart (no separator can be forged) and tells a missing tenant from any tenant id. */
const additionalData = (at: SealedAt<EncColumn | EncBytesColumn>) =>
  Buffer.from(JSON.stringify(['parley/column/v2', getTableName(at.column.table), at.column.name, at.tenantId]), 'utf8');

const rejected = (column: PgColumn) =>
  new KeyringError(
    KeyringErrorCode.Rejected,
    `${columnName(column)}: the stored value failed authentication (altered, or written for another tenant, table or column)`,
  );

interface Key {
  id: string;
  material: Buffer;
}

/**
 * AES-256-GCM keyring. The first key encrypts; every listed key decrypts, so a
 * rotation adds a new key in front and keeps the old ones until data is re-encrypted.
 * Format: `kid:base64key[,kid:base64key…]`, or a bare base64 key (id `k1`).
 */
export class Keyring {
  private readonly keys: Map<string, Buffer>;
  readonly primary: Key;
  private readonly indexKey: Buffer;
  private readonly oldest: Buffer;

  constructor(spec: string) {
    const parsed = spec
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((entry): Key => {
        const sep = entry.indexOf(':');
        const [id, b64] = sep > 0 ? [entry.slice(0, sep), entry.slice(sep + 1)] : ['k1', entry];
        if (!KID_PATTERN.test(id))
          throw new KeyringError(KeyringErrorCode.InvalidKey, `PARLEY_ENCRYPTION_KEY: key id "${id}" must match ${KID_PATTERN}`);
        const material = Buffer.from(b64, 'base64');
        if (material.length !== 32)
          throw new KeyringError(KeyringErrorCode.InvalidKey, `PARLEY_ENCRYPTION_KEY: key "${id}" must be 32 bytes, base64-encoded`);
        return { id, material };
      });
    if (parsed.length === 0) throw new KeyringError(KeyringErrorCode.InvalidKey, 'PARLEY_ENCRYPTION_KEY: no key given');
    this.keys = new Map(parsed.map((k) => [k.id, k.material]));
    this.primary = parsed[0];
    // Look-up hashes must stay stable across rotations, so they derive from the oldest key.
    const oldest = parsed[parsed.length - 1];
    this.indexKey = Buffer.from(hkdfSync('sha256', oldest.material, Buffer.alloc(0), 'parley/blind-index/v1', 32));
    this.oldest = oldest.material;
  }

  /**
   * The key of one tenant's data worker: it opens only that tenant's lookup payloads, so the
   * worker never holds Parley's keys. Derived (like the blind index, from the oldest key), never stored.
   */
  dataWorkerKey(tenantId: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.oldest, Buffer.alloc(0), `parley/data-worker/v1/${tenantId}`, 32));
  }

  static generateSpec(id = 'k1'): string {
    return `${id}:${randomBytes(32).toString('base64')}`;
  }

  keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /** Seals a Temporal payload under the primary key (the codec keeps the key id in the payload's metadata). */
  encryptBytes(plain: Uint8Array): { keyId: string; data: Buffer } {
    return { keyId: this.primary.id, data: sealBytes(this.primary.material, plain) };
  }

  decryptBytes(keyId: string, data: Uint8Array): Buffer {
    return openBytes(this.key(keyId), data);
  }

  /** Encrypts bytes for a bytea column, bound like `encrypt`: the data, and the label to store beside it (`v2.<kid>`). */
  encryptColumnBytes(plain: Uint8Array, at: SealedAt<EncBytesColumn>): { label: string; data: Buffer } {
    return { label: `v2.${this.primary.id}`, data: sealBytes(this.primary.material, plain, additionalData(at)) };
  }

  /** Opens bytes stored with `label`: `v2.<kid>` only in the row `at` names; a bare `<kid>` (written before the binding) anywhere. */
  decryptColumnBytes(label: string, data: Uint8Array, at: SealedAt<EncBytesColumn>): Buffer {
    const bound = label.startsWith('v2.');
    const key = this.key(bound ? label.slice(3) : label);
    try {
      return openBytes(key, data, bound ? additionalData(at) : undefined);
    } catch {
      throw rejected(at.column);
    }
  }

  /** Encrypts a string for a database column: `v2.<kid>.<base64url>`, bound to where it is stored. */
  encrypt(plain: string, at: SealedAt): string {
    const data = sealBytes(this.primary.material, Buffer.from(plain, 'utf8'), additionalData(at));
    return `v2.${this.primary.id}.${data.toString('base64url')}`;
  }

  /**
   * Opens a column value read from the row `at` names. v2 values open only there; v1 values
   * (written before the binding, unbound) still open until `npm run reencrypt` rewrites them.
   */
  decrypt(sealed: string, at: SealedAt): string {
    const [version, keyId, body, extra] = sealed.split('.');
    if ((version !== 'v1' && version !== 'v2') || !keyId || body === undefined || extra !== undefined) {
      throw new KeyringError(KeyringErrorCode.NotCiphertext, `${columnName(at.column)}: the stored value is not a Parley ciphertext`);
    }
    const key = this.key(keyId);
    try {
      return openBytes(key, Buffer.from(body, 'base64url'), version === 'v2' ? additionalData(at) : undefined).toString('utf8');
    } catch {
      throw rejected(at.column);
    }
  }

  /** What marks values written now (v2 under the primary key): `encrypt`'s start with it and a dot; `encryptColumnBytes`'s label is it. */
  currentVersion(): string {
    return `v2.${this.primary.id}`;
  }

  private key(keyId: string): Buffer {
    const key = this.keys.get(keyId);
    if (!key) throw new KeyringError(KeyringErrorCode.UnknownKey, `no key with id "${keyId}" in the keyring`);
    return key;
  }

  /** Keyed hash for equality look-ups (phone numbers, dedupe keys) without storing the value. */
  blindIndex(value: string): string {
    return createHmac('sha256', this.indexKey).update(value, 'utf8').digest('base64url');
  }
}

/** AES-256-GCM with a random IV: `iv | tag | ciphertext`; `aad` must be given again to open it. */
export function sealBytes(key: Buffer, plain: Uint8Array, aad?: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  if (aad) cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]);
}

export function openBytes(key: Buffer, data: Uint8Array, aad?: Buffer): Buffer {
  const buf = Buffer.from(data);
  const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(0, IV_BYTES));
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(buf.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(buf.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}

export function sha256(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
