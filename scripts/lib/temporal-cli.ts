import { execFile, spawnSync } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const TEMPORAL_CLI_VERSION = '1.5.1';

/** Per-user cache outside any clone, so a fresh clone on the same machine reuses the build. */
export function cacheBinDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'parley', 'bin');
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const out = found.stdout.trim();
  return found.status === 0 && out ? out : undefined;
}

/** Finds the Temporal CLI: TEMPORAL_CLI, `temporal` on PATH, then the per-user cache. */
export async function findTemporalCli(explicit?: string): Promise<string | undefined> {
  if (explicit) {
    if (!(await isExecutable(explicit))) throw new Error(`TEMPORAL_CLI=${explicit} is not an executable file`);
    return explicit;
  }
  const fromPath = onPath('temporal');
  if (fromPath) return fromPath;
  const cached = path.join(cacheBinDir(), 'temporal');
  return (await isExecutable(cached)) ? cached : undefined;
}

function goVersion(): [number, number] | undefined {
  const res = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' });
  const m = res.status === 0 ? /^go(\d+)\.(\d+)/.exec(res.stdout.trim()) : null;
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * Builds the CLI into the cache with `go install` (Go ≥ 1.25; v1.5.1 is the newest tag
 * without `replace` directives), or, without Go, downloads the official release archive.
 */
export async function installTemporalCli(log: (line: string) => void = console.log): Promise<string> {
  const bin = cacheBinDir();
  await mkdir(bin, { recursive: true });
  const target = path.join(bin, 'temporal');
  const go = goVersion();
  if (go && (go[0] > 1 || go[1] >= 25)) {
    log(`Building the Temporal CLI v${TEMPORAL_CLI_VERSION} with go install into ${bin} (a few minutes, once)…`);
    await run('go', ['install', `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`], {
      env: { ...process.env, GOBIN: bin },
      maxBuffer: 64 * 1024 * 1024,
    });
    return target;
  }
  const arch = { x64: 'amd64', arm64: 'arm64' }[os.arch() as string];
  const platform = { linux: 'linux', darwin: 'darwin' }[os.platform() as string];
  if (!arch || !platform) throw new Error(`no Temporal CLI release for ${os.platform()}/${os.arch()}; set TEMPORAL_CLI`);
  const url = `https://github.com/temporalio/cli/releases/download/v${TEMPORAL_CLI_VERSION}/temporal_cli_${TEMPORAL_CLI_VERSION}_${platform}_${arch}.tar.gz`;
  log(`Go ≥ 1.25 not found; downloading ${url}…`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'temporal-cli-'));
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`download failed: HTTP ${res.status}`);
    const archive = path.join(tmp, 'cli.tar.gz');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(archive, Buffer.from(await res.arrayBuffer()));
    await run('tar', ['-xzf', archive, '-C', bin, 'temporal']);
    await chmod(target, 0o755);
    return target;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export async function ensureTemporalCli(explicit?: string, log?: (line: string) => void): Promise<string> {
  return (await findTemporalCli(explicit)) ?? (await installTemporalCli(log));
}
