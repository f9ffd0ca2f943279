import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { Keyring } from '../crypto.js';
import { EncryptionCodec } from './codec.js';

/** `payloadCodec: false` exists for the codec benchmark only (PARLEY_PAYLOAD_CODEC=off). */
export function dataConverter(keyring: Keyring, opts: { payloadCodec?: boolean } = {}): DataConverter {
  return opts.payloadCodec === false ? {} : { payloadCodecs: [new EncryptionCodec(keyring)] };
}

export async function createTemporalClient(opts: { address: string; namespace: string; keyring: Keyring; payloadCodec?: boolean }): Promise<Client> {
  const connection = await Connection.connect({ address: opts.address });
  return new Client({ connection, namespace: opts.namespace, dataConverter: dataConverter(opts.keyring, opts) });
}
