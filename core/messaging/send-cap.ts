import { AsyncLocalStorage } from 'node:async_hooks';
import { AppError } from '../platform/errors.js';
import { providerFailure } from '../providers/http.js';

/** How long a capped sender is told to wait before trying again. */
export const SEND_CAP_RETRY_AFTER_S = 1;

/**
 * Caps how many of one tenant's sends a process has with providers at a time, so one tenant's
 * slow provider (or a burst of n8n answers) cannot take the process's connections, sockets and
 * event loop from the others. The cap is per process, like the connection pool it protects.
 * A sender over the cap is turned away at once, never queued: nothing waits holding a
 * connection. The API answers 429 SEND_CAP_REACHED; an activity fails as throttled and Temporal
 * retries it.
 */
export class TenantSendCap {
  private readonly inFlight = new Map<string, number>();
  private readonly held = new AsyncLocalStorage<string>();

  /** Runs `send` in one of the tenant's `limit` slots; `{ capped: true }` without running it when all are taken. */
  async run<T>(tenantId: string, limit: number, send: () => Promise<T>): Promise<{ capped: false; value: T } | { capped: true }> {
    const busy = this.inFlight.get(tenantId) ?? 0;
    if (busy >= limit) return { capped: true };
    this.inFlight.set(tenantId, busy + 1);
    try {
      return { capped: false, value: await this.held.run(tenantId, send) };
    } finally {
      const left = (this.inFlight.get(tenantId) ?? 1) - 1;
      if (left > 0) this.inFlight.set(tenantId, left);
      else this.inFlight.delete(tenantId);
    }
  }

  /** Whether the current call already holds one of the tenant's slots (a send nested in a capped one takes no second). */
  holds(tenantId: string): boolean {
    return this.held.getStore() === tenantId;
  }

  /** The tenant's sends now in flight in this process. */
  busy(tenantId: string): number {
    return this.inFlight.get(tenantId) ?? 0;
  }
}

/** The process's cap, shared by every send path of the API or the worker. */
export const tenantSendCap = new TenantSendCap();

const capMessage = (limit: number) =>
  `the tenant already has ${limit} sends in flight (settings.max_concurrent_sends); retry in ${SEND_CAP_RETRY_AFTER_S} s`;

/** For the API: 429 with Retry-After; nothing was recorded or sent. */
export const sendCapReached = (limit: number) => new AppError(429, 'SEND_CAP_REACHED', capMessage(limit), SEND_CAP_RETRY_AFTER_S);

/** For activities: throttled, so Temporal retries the send after the pause. */
export const sendCapThrottled = (limit: number) =>
  providerFailure(
    'throttled',
    { provider: 'send-cap', title: `tenant send cap (${limit}) reached` },
    new Headers({ 'retry-after': String(SEND_CAP_RETRY_AFTER_S) }),
  );
