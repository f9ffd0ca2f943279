import { ensureTemporalCli } from './lib/temporal-cli.js';
import { loadConfig } from '../core/platform/config.js';

// `npm run temporal:install`: make sure the Temporal CLI is available and print its path.
const cli = await ensureTemporalCli(loadConfig().TEMPORAL_CLI);
console.log(cli);
