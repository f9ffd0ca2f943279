import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** EGRESS_ALLOW's grammar, apart from the policy so config parsing needs no network code. */

export interface HostPort {
  host: string;
  port: number;
}

export type AllowRule = { kind: 'cidr'; range: [ipaddr.IPv4 | ipaddr.IPv6, number] } | { kind: 'hostport'; host: string; port: number };

/** The WHATWG URL parser's canonical host: `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` all become 127.0.0.1. */
export function canonicalHost(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 6) return ipaddr.parse(bare).toString();
  try {
    return new URL(`http://${bare}/`).hostname.replace(/\.$/, '');
  } catch {
    return bare.toLowerCase();
  }
}

/** `host:port` or `[v6]:port`; `defaultPort` when the port is left out. */
export function parseHostPort(value: string, defaultPort?: number): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(value) ?? /^([^:]+)(?::(\d+))?$/.exec(value);
  const port = m?.[2] ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`"${value}" is not host:port`);
  return { host: canonicalHost(m[1]), port };
}

/** One EGRESS_ALLOW entry: a CIDR (`10.0.0.0/8`), a single address, or `host:port`. */
export function parseAllowRule(entry: string): AllowRule {
  const e = entry.trim();
  if (e.includes('/')) return { kind: 'cidr', range: ipaddr.parseCIDR(e) };
  if (ipaddr.isValid(e)) {
    const a = ipaddr.parse(e);
    return { kind: 'cidr', range: [a, a.kind() === 'ipv4' ? 32 : 128] };
  }
  const hp = parseHostPort(e);
  return { kind: 'hostport', host: hp.host, port: hp.port };
}

export function isEgressAllowEntry(entry: string): boolean {
  try {
    parseAllowRule(entry);
    return true;
  } catch {
    return false;
  }
}
