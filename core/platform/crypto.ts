import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

export class KeyringError extends Error {}

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
        if (!KID_PATTERN.test(id)) throw new KeyringError(`PARLEY_ENCRYPTION_KEY: key id "${id}" must match ${KID_PATTERN}`);
        const material = Buffer.from(b64, 'base64');
        if (material.length !== 32) throw new KeyringError(`PARLEY_ENCRYPTION_KEY: key "${id}" must be 32 bytes, base64-encoded`);
        return { id, material };
      });
    if (parsed.length === 0) throw new KeyringError('PARLEY_ENCRYPTION_KEY: no key given');
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

  encryptBytes(plain: Uint8Array): { keyId: string; data: Buffer } {
    return { keyId: this.primary.id, data: sealBytes(this.primary.material, plain) };
  }

  decryptBytes(keyId: string, data: Uint8Array): Buffer {
    const key = this.keys.get(keyId);
    if (!key) throw new KeyringError(`no key with id "${keyId}" in the keyring`);
    return openBytes(key, data);
  }

  /** Encrypts a string for a database column: `v1.<kid>.<base64url>`. */
  encrypt(plain: string): string {
    const { keyId, data } = this.encryptBytes(Buffer.from(plain, 'utf8'));
    return `v1.${keyId}.${data.toString('base64url')}`;
  }

  decrypt(sealed: string): string {
    const [version, keyId, body] = sealed.split('.');
    if (version !== 'v1' || !keyId || body === undefined) throw new KeyringError('not a Parley ciphertext');
    return this.decryptBytes(keyId, Buffer.from(body, 'base64url')).toString('utf8');
  }

  /** Keyed hash for equality look-ups (phone numbers, dedupe keys) without storing the value. */
  blindIndex(value: string): string {
    return createHmac('sha256', this.indexKey).update(value, 'utf8').digest('base64url');
  }
}

/** AES-256-GCM with a random IV: `iv | tag | ciphertext`. */
export function sealBytes(key: Buffer, plain: Uint8Array): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]);
}

export function openBytes(key: Buffer, data: Uint8Array): Buffer {
  const buf = Buffer.from(data);
  const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(0, IV_BYTES));
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
