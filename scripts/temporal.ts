import { spawn } from 'node:child_process';
import path from 'node:path';
import { loadConfigOrExit } from '../core/platform/config-errors.js';
import { runningInstance } from './lib/instance-lock.js';
import { ensureTemporalCli } from './lib/temporal-cli.js';

/**
 * `npm run temporal -- <args>`: the project's Temporal CLI (installed on first use), pointed at
 * the Temporal of the `npm start` running on DATA_DIR, else at TEMPORAL_ADDRESS or the dev
 * server's port. An `--address` in the arguments still wins (the CLI prefers flags to its
 * TEMPORAL_ADDRESS variable).
 */
const config = loadConfigOrExit();
const cli = await ensureTemporalCli(config.TEMPORAL_CLI, (line) => process.stderr.write(`${line}\n`));
const running = await runningInstance(path.resolve(config.DATA_DIR));
const address = running?.temporalAddress ?? config.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.TEMPORAL_PORT}`;
const child = spawn(cli, process.argv.slice(2), {
  stdio: 'inherit',
  env: { ...process.env, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: config.TEMPORAL_NAMESPACE },
});
// Ctrl-C reaches the CLI itself (same process group): this process waits for it to finish.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
