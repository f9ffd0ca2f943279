import pg from 'pg';
import { JOBS_CHANNEL } from './jobs.js';

/**
 * Wakes long-polling `GET /queue/next-job` requests when a job is enqueued for their tenant
 * (and, on its own channel, data workers' `GET …/data-worker/next`), from any process (the
 * worker enqueues conversation turns): one LISTEN connection per API process and channel, opened on first use. A lost connection is reopened by the next waiter; pollers
 * re-check on a short interval anyway, so a missed notification only delays a claim.
 */
export class JobNotifier {
  private client?: pg.Client;
  private connecting?: Promise<pg.Client | undefined>;
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;

  constructor(
    private readonly connection: pg.ClientConfig,
    private readonly channel: string = JOBS_CHANNEL,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves when a job is enqueued for the tenant, or after `ms`, or at once when closed. */
  async wait(tenantId: string, ms: number): Promise<void> {
    await this.listen();
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const set = this.waiters.get(tenantId) ?? new Set();
      this.waiters.set(tenantId, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(tenantId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const set of this.waiters.values()) for (const done of [...set]) done();
    const client = this.client ?? (await this.connecting);
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private listen(): Promise<pg.Client | undefined> {
    if (this.client || this.closed) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client = new pg.Client(this.connection);
      const drop = () => {
        if (this.client === client) this.client = undefined;
      };
      client.on('error', drop);
      client.on('end', drop);
      client.on('notification', (n) => {
        for (const done of [...(this.waiters.get(n.payload ?? '') ?? [])]) done();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${this.channel}`);
        if (this.closed) {
          await client.end();
          return undefined;
        }
        this.client = client;
        return client;
      } catch {
        // Without LISTEN, long polls still re-check on their interval.
        await client.end().catch(() => undefined);
        return undefined;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }
}
