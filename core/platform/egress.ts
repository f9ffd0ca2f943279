import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';
import { ApplicationFailure } from '@temporalio/common';
import { Agent, buildConnector, fetch as undiciFetch, type RequestInit, type Response } from 'undici';
import { AppError, FailureType } from './errors.js';
import { canonicalHost, parseAllowRule, parseHostPort, type AllowRule, type HostPort } from './egress-allow.js';

export { canonicalHost } from './egress-allow.js';

/**
 * The one egress policy for every destination a tenant controls or influences (data sources,
 * the AI profile's base_url, channel api_base_urls, media URLs, outbound webhooks). Only public
 * unicast addresses pass, unless the operator opened a range or host:port with EGRESS_ALLOW;
 * Parley's own services (database, Temporal frontend and UI, its API) and cloud metadata
 * endpoints never pass. The check runs on the address actually connected to, so a name that
 * re-resolves to 127.0.0.1 after it was validated is still refused.
 */

export const EGRESS_REFUSED = 'EGRESS_REFUSED';

export class EgressRefusedError extends Error {
  readonly code = EGRESS_REFUSED;
  constructor(
    readonly destination: string,
    readonly reason: string,
  ) {
    super(`egress policy: ${destination} refused (${reason})`);
    this.name = 'EgressRefusedError';
  }
}

export class ResponseTooLargeError extends Error {
  readonly code = 'RESPONSE_TOO_LARGE';
  constructor(readonly maxBytes: number) {
    super(`the response exceeded ${maxBytes} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

export class ResponseTimeoutError extends Error {
  readonly code = 'RESPONSE_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`the response took longer than ${timeoutMs} ms`);
    this.name = 'ResponseTimeoutError';
  }
}

/** Resolves a name to every address it has (tests inject one to simulate DNS rebinding). */
export type Resolver = (hostname: string) => Promise<string[]>;

const systemResolver: Resolver = async (hostname) => (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

export interface EgressPolicyOptions {
  /** EGRESS_ALLOW entries: CIDRs (`10.0.0.0/8`), single addresses, or `host:port`. */
  allow?: string[];
  /** Parley's own services, refused whatever the allowlist says. */
  ownServices?: (HostPort & { name: string })[];
  resolver?: Resolver;
  /** No checks at all: a tenant's own data worker, inside the tenant's network. */
  unrestricted?: boolean;
}

/** Cloud metadata endpoints: refused even inside an allowed range. */
const METADATA_ADDRESSES = new Set(['169.254.169.254', '169.254.170.2', '100.100.100.200', 'fd00:ec2::254']);
const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata.goog', 'metadata']);

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
const CONFIGURE_RESOLVE_MS = 3000;

/** Why an address is not a public destination, or undefined when it is. */
function nonPublicReason(address: string): string | undefined {
  const a = ipaddr.process(address);
  const range = a.range();
  if (a.kind() === 'ipv4') return range === 'unicast' ? undefined : `${range} address`;
  if (range !== 'unicast' || !(a as ipaddr.IPv6).match(GLOBAL_UNICAST_V6))
    return `${range === 'unicast' ? 'non-global' : range} IPv6 address`;
  return undefined;
}

export class EgressPolicy {
  private readonly allow: AllowRule[];
  private readonly own: (HostPort & { name: string })[];
  private readonly resolver: Resolver;
  private readonly unrestricted: boolean;
  private ownAddresses?: Promise<{ name: string; port: number; addresses: Set<string>; local: boolean }[]>;
  private agentInstance?: Agent;

  constructor(opts: EgressPolicyOptions = {}) {
    this.allow = (opts.allow ?? []).filter((e) => e.trim()).map(parseAllowRule);
    this.own = opts.ownServices ?? [];
    this.resolver = opts.resolver ?? systemResolver;
    this.unrestricted = opts.unrestricted ?? false;
  }

  static unrestricted(): EgressPolicy {
    return new EgressPolicy({ unrestricted: true });
  }

  /** Parley's own services with their addresses; a wildcard or loopback host covers every local address. */
  private ownResolved() {
    this.ownAddresses ??= Promise.all(
      this.own.map(async (s) => {
        const literal = isIP(s.host) ? [s.host] : await this.resolver(s.host).catch(() => [] as string[]);
        const addresses = new Set(literal.map((a) => ipaddr.process(a).toString()));
        const local = [...addresses].some((a) => ['loopback', 'unspecified'].includes(ipaddr.parse(a).range()));
        return { name: s.name, port: s.port, addresses, local };
      }),
    );
    return this.ownAddresses;
  }

  /** Why connecting to `address:port` (reached through `hostname`) is refused, or undefined. */
  async refusal(hostname: string, address: string, port: number): Promise<string | undefined> {
    if (this.unrestricted) return undefined;
    if (!ipaddr.isValid(address)) return 'not an IP address';
    const a = ipaddr.process(address);
    const addr = a.toString();
    if (METADATA_NAMES.has(hostname) || METADATA_ADDRESSES.has(addr)) return 'a cloud metadata endpoint';
    const local = ['loopback', 'unspecified'].includes(a.range()) || localAddresses().has(addr);
    for (const s of await this.ownResolved()) {
      if (s.port === port && (s.addresses.has(addr) || (s.local && local))) return `Parley's own ${s.name}`;
    }
    for (const rule of this.allow) {
      if (rule.kind === 'cidr' && rule.range[0].kind() === a.kind() && a.match(rule.range)) return undefined;
      if (rule.kind === 'hostport' && rule.port === port && (rule.host === hostname || rule.host === addr)) return undefined;
    }
    return nonPublicReason(addr);
  }

  /** Whether EGRESS_ALLOW names this exact host:port (an address range is not enough to name a host). */
  namesHostPort(host: string, port: number): boolean {
    const hostname = canonicalHost(host);
    return this.unrestricted || this.allow.some((r) => r.kind === 'hostport' && r.port === port && r.host === hostname);
  }

  /** Whether EGRESS_ALLOW names this host:port, or an address range holding this literal address. */
  allowlisted(host: string, port: number): boolean {
    const hostname = canonicalHost(host);
    if (this.namesHostPort(hostname, port)) return true;
    if (!ipaddr.isValid(hostname)) return false;
    const a = ipaddr.process(hostname);
    return this.allow.some((r) => r.kind === 'cidr' && r.range[0].kind() === a.kind() && a.match(r.range));
  }

  /**
   * Resolves a host and checks every address it has (one bad address refuses the name: a
   * rebinding resolver may hand it out next); returns the addresses to connect to.
   */
  async resolve(host: string, port: number): Promise<string[]> {
    const hostname = canonicalHost(host);
    const destination = `${hostname}:${port}`;
    if (this.unrestricted) return [hostname];
    if (METADATA_NAMES.has(hostname)) throw new EgressRefusedError(destination, 'a cloud metadata endpoint');
    const addresses = isIP(hostname) ? [hostname] : await this.resolver(hostname);
    if (addresses.length === 0) throw new EgressRefusedError(destination, 'the name has no address');
    for (const address of addresses) {
      const reason = await this.refusal(hostname, address, port);
      if (reason) throw new EgressRefusedError(destination, reason);
    }
    return addresses;
  }

  /**
   * Configure-time check of a URL: a 400 naming the field when it is refused. A name that does
   * not resolve from here is accepted; the connect-time check still applies where it is used.
   */
  async assertUrl(value: string, field: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new AppError(400, 'VALIDATION_FAILED', `${field}: must be an http(s) URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new AppError(400, 'VALIDATION_FAILED', `${field}: must be an http(s) URL`);
    await this.assertHost(url.hostname, Number(url.port) || (url.protocol === 'https:' ? 443 : 80), field);
  }

  async assertHost(host: string, port: number, field: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    // A resolver that does not answer must not hold a PUT: the name is checked again at connect time.
    const slow = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CONFIGURE_RESOLVE_MS);
    });
    try {
      await Promise.race([this.resolve(host, port), slow]);
    } catch (err) {
      if (err instanceof EgressRefusedError && err.reason !== 'the name has no address') {
        throw new AppError(400, EGRESS_REFUSED, `${field}: ${err.message}`);
      }
      if (!(err instanceof EgressRefusedError) && !isDnsFailure(err)) throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** An undici dispatcher that resolves, checks and connects to the checked address, for every connection. */
  get agent(): Agent {
    if (this.agentInstance) return this.agentInstance;
    const base = buildConnector({});
    this.agentInstance = new Agent({
      connect: (opts, callback) => {
        const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
        const hostname = opts.hostname.replace(/^\[|\]$/g, '');
        this.resolve(hostname, port).then(
          ([address]) =>
            base(
              {
                ...opts,
                hostname: address,
                // TLS still verifies the certificate against the name that was asked for.
                servername: opts.servername ?? (isIP(hostname) ? undefined : hostname),
              },
              callback,
            ),
          (err: Error) => callback(err, null),
        );
      },
    });
    return this.agentInstance;
  }

  async close(): Promise<void> {
    await this.agentInstance?.close();
    this.agentInstance = undefined;
  }
}

function isDnsFailure(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA' || code === 'ESERVFAIL';
}

/** This host's own interface addresses: a service bound to 0.0.0.0 answers on each of them. */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(ipaddr.process(i.address).toString());
  return out;
}

let current = new EgressPolicy();

/** Sets the process's policy (once at start, from config); until then only public addresses pass. */
export function installEgressPolicy(policy: EgressPolicy): void {
  if (policy !== current) void current.close();
  current = policy;
}

export function egressPolicy(): EgressPolicy {
  return current;
}

/** Parley's own services from config: refused as destinations whatever their address. */
export function ownServices(
  config: {
    HOST: string;
    PORT: number;
    TEMPORAL_ADDRESS?: string;
    TEMPORAL_PORT: number;
    TEMPORAL_UI_PORT: number;
    EMBEDDED_PG_PORT: number;
  },
  databaseUrl?: string,
): (HostPort & { name: string })[] {
  const temporal = config.TEMPORAL_ADDRESS
    ? parseHostPort(config.TEMPORAL_ADDRESS, 7233)
    : { host: '127.0.0.1', port: config.TEMPORAL_PORT };
  const db = databaseUrl ? new URL(databaseUrl) : undefined;
  return [
    db
      ? { name: 'database', host: canonicalHost(db.hostname || '127.0.0.1'), port: Number(db.port) || 5432 }
      : { name: 'database', host: '127.0.0.1', port: config.EMBEDDED_PG_PORT },
    { name: 'Temporal frontend', ...temporal },
    { name: 'Temporal UI', host: temporal.host, port: config.TEMPORAL_UI_PORT },
    { name: 'API', host: canonicalHost(config.HOST), port: config.PORT },
  ];
}

/** Configure time: a 400 naming `field` when the URL's destination is refused. */
export function assertEgressAllowed(url: string, field: string): Promise<void> {
  return current.assertUrl(url, field);
}

/** Configure time, for a host and port (SQL data sources): a 400 naming `field` when refused. */
export function assertHostAllowed(host: string, port: number, field: string): Promise<void> {
  return current.assertHost(host, port, field);
}

export interface EgressFetchOptions {
  /** Redirects followed, each hop checked again (0: a 3xx comes back as it is). */
  maxRedirects?: number;
}

/**
 * fetch through the egress policy: every connection checked at connect time, redirects not
 * followed unless asked (then re-checked per hop, credentials dropped when the origin changes).
 */
export async function egressFetch(url: string, init: RequestInit = {}, opts: EgressFetchOptions = {}): Promise<Response> {
  const policy = current;
  let target = new URL(url);
  let headers = new Headers(init.headers as HeadersInit | undefined);
  for (let hop = 0; ; hop++) {
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new EgressRefusedError(target.host, 'not an http(s) URL');
    const res = await undiciFetch(target, { ...init, headers, redirect: 'manual', dispatcher: policy.agent });
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location || hop >= (opts.maxRedirects ?? 0)) return res;
    await res.body?.cancel();
    const next = new URL(location, target);
    if (next.origin !== target.origin) {
      headers = new Headers(headers);
      headers.delete('authorization');
      headers.delete('cookie');
    }
    target = next;
  }
}

export interface ReadCaps {
  maxBytes: number;
  timeoutMs: number;
}

/** A fetch Response from either undici or the global fetch. */
export interface CappableResponse {
  body: { getReader(): ReadableStreamDefaultReader<Uint8Array>; cancel(reason?: unknown): Promise<void> } | null;
  headers: { get(name: string): string | null };
}

/** Reads a body as a stream, refusing more than maxBytes or a read that outlasts timeoutMs (chunked bodies included). */
export async function readCapped(res: CappableResponse, caps: ReadCaps): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > caps.maxBytes) {
    await res.body?.cancel();
    throw new ResponseTooLargeError(caps.maxBytes);
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ResponseTimeoutError(caps.timeoutMs)), caps.timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), expired]);
      if (done) break;
      total += value.byteLength;
      if (total > caps.maxBytes) throw new ResponseTooLargeError(caps.maxBytes);
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}

/** A fetch for SDKs that read the body themselves (the OpenAI client): through the policy, body capped. */
export function cappedFetch(
  caps: ReadCaps,
): (input: string | URL | Request, init?: globalThis.RequestInit) => Promise<globalThis.Response> {
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.toString() : input.url;
    const res = await egressFetch(url, init as RequestInit);
    const body = await readCapped(res, caps);
    return new globalThis.Response(res.status === 204 || res.status === 304 ? null : new Uint8Array(body), {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers as unknown as HeadersInit,
    });
  };
}

/** The egress refusal inside an error (fetch wraps it as `cause`), if any. */
export function findEgressRefusal(err: unknown): EgressRefusedError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof EgressRefusedError) return e;
  }
  return undefined;
}

/** Run time: the non-retryable failure for a refused destination. */
export function egressFailure(err: EgressRefusedError): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.EgressRefused, message: err.message, nonRetryable: true });
}
