import type { Db } from '../db/client.js';
import type { Channel } from '../db/schema.js';
import type { Keyring } from '../crypto.js';
import { SandboxProvider } from './sandbox.js';
import type { Provider } from './types.js';

export type { OutboundText, Provider, SendResult } from './types.js';

export interface Providers {
  forChannel(channel: Channel): Provider;
}

export function createProviders(deps: { db: Db; keyring: Keyring; sandboxLatencyMs?: number }): Providers {
  const sandbox = new SandboxProvider(deps.db, deps.keyring, deps.sandboxLatencyMs ?? 0);
  return {
    forChannel(channel) {
      switch (channel.provider) {
        case 'sandbox':
          return sandbox;
        default:
          throw new Error(`provider "${channel.provider}" is not available`);
      }
    },
  };
}
