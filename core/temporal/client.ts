import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { Keyring } from '../crypto.js';
import { EncryptionCodec } from './codec.js';

export function dataConverter(keyring: Keyring): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keyring)] };
}

export async function createTemporalClient(opts: { address: string; namespace: string; keyring: Keyring }): Promise<Client> {
  const connection = await Connection.connect({ address: opts.address });
  return new Client({ connection, namespace: opts.namespace, dataConverter: dataConverter(opts.keyring) });
}
