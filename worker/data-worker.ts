import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { z } from 'zod';
import { loadConfig } from '../core/platform/config.js';
import { EgressPolicy, installEgressPolicy } from '../core/platform/egress.js';
import { requireSetting } from '../core/platform/services.js';
import { dataSourcesSchema } from '../core/data-engine/config.js';
import { ConnectorPools, LookupError, probe, runQuery } from '../core/data-engine/connectors.js';
import { remoteOfferView, type remoteAnswerBody } from '../core/data-engine/remote.js';

/**
 * `npm run data-worker -- --tenant acme [--sources sources.json]`: a lookup worker a tenant runs
 * inside its own network. It holds Parley's URL, an API key of that tenant with the `data_worker`
 * scope, and its own sources' credentials (file or DATA_WORKER_SOURCES) — no Temporal address and
 * nothing of Parley's database or keys. It pulls the tenant's lookups over HTTP, runs them with
 * the same connectors Parley uses, and posts the answers back.
 */
const { values } = parseArgs({ options: { tenant: { type: 'string' }, sources: { type: 'string' } } });
const config = loadConfig();
const tenant = requireSetting(values.tenant, '--tenant', 'for `npm run data-worker`');
const parleyUrl = requireSetting(config.PARLEY_URL, 'PARLEY_URL', "(Parley's API) for `npm run data-worker`");
const apiKey = requireSetting(
  config.PARLEY_DATA_WORKER_KEY,
  'PARLEY_DATA_WORKER_KEY',
  '(an API key of the tenant with the data_worker scope, from POST /routes/tenants/<id>/keys) for `npm run data-worker`',
);
const file = values.sources ?? config.DATA_WORKER_SOURCES_FILE;
const raw = file
  ? await readFile(file, 'utf8')
  : requireSetting(config.DATA_WORKER_SOURCES, 'DATA_WORKER_SOURCES or --sources <file>', 'for `npm run data-worker`');
const parsed = dataSourcesSchema.safeParse(JSON.parse(raw));
if (!parsed.success) {
  throw new Error(`invalid data sources: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}
const sources = new Map(parsed.data.data_sources.map((s) => [s.id, s]));

const log = pino({ level: config.LOG_LEVEL, base: { tenant } });
const base = `${parleyUrl.replace(/\/+$/, '')}/routes/tenants/${encodeURIComponent(tenant)}/data-worker`;
/** Short, and renewed while a lookup runs: a worker that dies hands its lookup back within this. */
const LEASE_S = 2;
const WAIT_S = 20;
const stopping = new AbortController();
// The tenant's own network: reaching its private databases and APIs is the point, so no egress policy here.
installEgressPolicy(EgressPolicy.unrestricted());
const pools = new ConnectorPools();

type Offer = z.infer<typeof remoteOfferView>;
type Answer = z.input<typeof remoteAnswerBody>;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  /** A wrong URL, key, scope or tenant: polling on would only repeat it. */
  get fatal(): boolean {
    return this.status === 401 || this.status === 403 || this.status === 404;
  }
}

/** `poll`: given up when the worker stops; answers and lease renewals still go out. */
async function call(method: 'GET' | 'POST', path: string, opts: { body?: unknown; timeoutMs: number; poll?: boolean }): Promise<Response> {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, ...(opts.body ? { 'content-type': 'application/json' } : {}) },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
    signal: opts.poll ? AbortSignal.any([stopping.signal, AbortSignal.timeout(opts.timeoutMs)]) : AbortSignal.timeout(opts.timeoutMs),
  });
  if (res.ok) return res;
  const text = await res.text();
  let error = { code: 'HTTP_ERROR', message: text.slice(0, 200) };
  try {
    error = (JSON.parse(text) as { error: typeof error }).error ?? error;
  } catch {
    // not JSON: keep the text
  }
  throw new ApiError(res.status, error.code, `${method} ${path}: ${res.status} ${error.code}: ${error.message}`);
}

async function next(waitS: number): Promise<Offer | undefined> {
  const res = await call('GET', `/next?wait_s=${waitS}&lease_s=${LEASE_S}`, { timeoutMs: (waitS + 10) * 1000, poll: true });
  if (res.status === 204) return undefined;
  return remoteOfferView.parse(await res.json());
}

/** Runs the lookup against this worker's own configuration of the named source. */
async function run(offer: Offer): Promise<Answer> {
  const source = sources.get(offer.data_source);
  if (!source) {
    return {
      ok: false,
      error: { code: 'not_found', message: `no data source "${offer.data_source}" in this data worker's configuration` },
    };
  }
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    if (offer.kind === 'test') {
      await probe(pools, tenant, source, { timeoutMs: Math.min(source.connection.timeout_ms ?? 5000, offer.timeout_ms) });
      return { ok: true, source_ms: elapsed() };
    }
    if (offer.query === null) return { ok: false, error: { code: 'bad_request', message: 'a lookup without a query' } };
    const rows = await runQuery(pools, tenant, source, offer.query, offer.params, offer.order, { timeoutMs: offer.timeout_ms });
    return { ok: true, rows, source_ms: elapsed() };
  } catch (err) {
    if (err instanceof LookupError) return { ok: false, error: { code: err.kind, message: err.message } };
    log.error({ err: { name: (err as Error).name }, lookup_id: offer.lookup_id }, 'lookup failed unexpectedly');
    return { ok: false, error: { code: 'unavailable', message: 'the data worker failed unexpectedly (see its log)' } };
  }
}

/** Posts the answer, retrying network errors and 5xx until the lookup's deadline; a 409 means it is settled already. */
async function answer(offer: Offer, body: Answer): Promise<void> {
  const deadline = Date.parse(offer.deadline);
  for (let attempt = 0; ; attempt++) {
    try {
      await (await call('POST', `/lookups/${offer.lookup_id}/result`, { body, timeoutMs: 10_000 })).text();
      return;
    } catch (err) {
      if (err instanceof ApiError && err.status < 500) {
        log.warn({ lookup_id: offer.lookup_id, code: err.code }, 'answer not taken');
        return;
      }
      if (Date.now() > deadline) throw err;
      await delay(Math.min(100 * 2 ** attempt, 1000));
    }
  }
}

async function handle(offer: Offer): Promise<void> {
  log.info({ lookup_id: offer.lookup_id, kind: offer.kind, data_source: offer.data_source }, 'lookup leased');
  const renew = setInterval(
    () => {
      call('POST', `/lookups/${offer.lookup_id}/lease?lease_s=${LEASE_S}`, { timeoutMs: 5000 })
        .then((res) => res.text())
        .catch(() => undefined);
    },
    (LEASE_S * 1000) / 3,
  );
  try {
    const body = await run(offer);
    await answer(offer, body);
    log.info({ lookup_id: offer.lookup_id, ok: body.ok, source_ms: body.ok ? body.source_ms : undefined }, 'lookup answered');
  } catch (err) {
    log.warn({ lookup_id: offer.lookup_id, err: { name: (err as Error).name, message: (err as Error).message } }, 'could not answer');
  } finally {
    clearInterval(renew);
  }
}

function fatal(err: unknown): never {
  log.fatal({ code: err instanceof ApiError ? err.code : undefined, message: (err as Error).message }, 'cannot pull lookups');
  process.exit(1);
}

/** One of DATA_WORKER_CONCURRENCY loops: long-poll, run, answer. */
async function poller(first?: Offer): Promise<void> {
  if (first) await handle(first);
  while (!stopping.signal.aborted) {
    let offer: Offer | undefined;
    try {
      offer = await next(WAIT_S);
    } catch (err) {
      if (stopping.signal.aborted) return;
      if (err instanceof ApiError && err.fatal) fatal(err);
      log.warn({ message: (err as Error).message }, 'poll failed; retrying');
      await delay(1000);
      continue;
    }
    if (offer) await handle(offer);
  }
}

// The first poll does not wait: a wrong key, scope or tenant stops the worker before anything else.
const first = await next(0).catch((err: unknown) => {
  if (err instanceof ApiError && err.fatal) fatal(err);
  log.warn({ message: (err as Error).message }, 'Parley is not reachable yet; polling on');
  return undefined;
});
log.info({ parley: parleyUrl, sources: sources.size, concurrency: config.DATA_WORKER_CONCURRENCY }, 'data worker polling');
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log.info('stopping: finishing the lookups in hand');
    stopping.abort();
  });
}
await Promise.all(Array.from({ length: config.DATA_WORKER_CONCURRENCY }, (_, i) => poller(i === 0 ? first : undefined)));
await pools.close();
