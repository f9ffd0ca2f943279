import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export function summarize(values: number[]): { n: number; p50: number; p99: number; max: number; mean: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN, mean };
}

export const ms = (v: number) => `${v.toFixed(1)} ms`;

export function parseArgs<T extends Record<string, number | string>>(defaults: T, argv = process.argv.slice(2)): T {
  const out: Record<string, number | string> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) continue;
    const key = m[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${m[1]}; options: ${Object.keys(defaults).join(', ')}`);
    const raw = m[2] ?? argv[++i];
    out[key] = typeof defaults[key] === 'number' ? Number(raw) : raw;
    if (typeof defaults[key] === 'number' && !Number.isFinite(out[key])) throw new Error(`--${m[1]} must be a number`);
  }
  return out as T;
}

/**
 * CPU seconds used so far, per role (for "what limits it"): Parley's Node processes are told
 * apart by their script (API, worker, this load generator), everything else by command name.
 */
export async function cpuByCommand(): Promise<Map<string, number>> {
  const stdout: string = await new Promise((resolve, reject) =>
    execFile('ps', ['-eo', 'times=,comm=,args='], (err, out) => (err ? reject(err) : resolve(out))),
  );
  const totals = new Map<string, number>();
  for (const line of stdout.trim().split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, seconds, comm, args] = m;
    const name = comm.startsWith('postgres') ? 'postgres' : comm === 'node' ? nodeRole(args) : comm;
    totals.set(name, (totals.get(name) ?? 0) + Number(seconds));
  }
  return totals;
}

function nodeRole(args: string): string {
  if (args.includes('worker/main.ts')) return 'node(worker)';
  if (args.includes('scripts/start.ts')) return 'node(api)';
  if (args.includes('bench/')) return 'node(load generator)';
  return 'node';
}

/** CPU milliseconds a process has used so far (user + system, from /proc; Linux). */
export async function processCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100;
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}
