import type { Db } from '../db/client.js';
import type { Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { DEFAULT_PROVIDER_SETTINGS, providerFailure, type ProviderSettings } from './http.js';
import { InfobipProvider } from './infobip.js';
import { MetaProvider } from './meta.js';
import { SandboxProvider } from './sandbox.js';
import { TwilioProvider } from './twilio.js';
import type { Provider } from './types.js';

export type {
  Interactive,
  OutboundInteractive,
  OutboundTemplate,
  OutboundText,
  Provider,
  ReconcileBy,
  SendResult,
  SentQuery,
} from './types.js';
export type { ProviderSettings } from './http.js';

export interface Providers {
  forChannel(channel: Channel): Provider;
}

/**
 * What a disabled (or deleted) channel sends through: every send is refused for good, so the
 * caller records it as failed like any provider rejection, with the code `channel_disabled`.
 */
function disabledProvider(name: string): Provider {
  const refuse = () =>
    Promise.reject(providerFailure('rejected', { provider: name, code: 'channel_disabled', title: 'the channel is disabled' }));
  return { name, reconcileBy: 'resend', sendText: refuse, sendTemplate: refuse, sendInteractive: refuse };
}

export function createProviders(deps: { db: Db; keyring: Keyring; sandboxLatencyMs?: number; settings?: ProviderSettings }): Providers {
  const sandbox = new SandboxProvider(deps.db, deps.keyring, deps.sandboxLatencyMs ?? 0);
  const settings = deps.settings ?? DEFAULT_PROVIDER_SETTINGS;
  const meta = new MetaProvider(deps.keyring, settings);
  const twilio = new TwilioProvider(deps.keyring, settings);
  const infobip = new InfobipProvider(deps.keyring, settings);
  return {
    forChannel(channel) {
      if (!channel.enabled) return disabledProvider(channel.provider);
      switch (channel.provider) {
        case 'sandbox':
          return sandbox;
        case 'meta':
          return meta;
        case 'twilio':
          return twilio;
        case 'infobip':
          return infobip;
        default:
          throw new Error(`provider "${channel.provider}" is not available`);
      }
    },
  };
}
