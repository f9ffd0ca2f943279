import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { installTemporalRuntime } from './runtime.js';
import type { DataConverter } from '@temporalio/common';
import type { Keyring } from '../platform/crypto.js';
import { EncryptionCodec } from './codec.js';

/** The failure converter's module; every workflow bundle must be built with the same one. */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.ts', import.meta.url));

/** `payloadCodec: false` exists for the codec benchmark only (PARLEY_PAYLOAD_CODEC=off). */
export function dataConverter(keyring: Keyring, opts: { payloadCodec?: boolean } = {}): DataConverter {
  return {
    failureConverterPath: FAILURE_CONVERTER_PATH,
    ...(opts.payloadCodec === false ? {} : { payloadCodecs: [new EncryptionCodec(keyring)] }),
  };
}

/**
 * A client on the SDK's native (Rust) connection rather than @grpc/grpc-js: the gRPC work leaves
 * the API's event loop, which then answers webhooks sooner (bench/inbound.ts).
 */
export async function createTemporalClient(opts: {
  address: string;
  namespace: string;
  keyring: Keyring;
  payloadCodec?: boolean;
}): Promise<Client> {
  installTemporalRuntime();
  const connection = await NativeConnection.connect({ address: opts.address });
  return new Client({ connection, namespace: opts.namespace, dataConverter: dataConverter(opts.keyring, opts) });
}
