import { ensureTemporalCli } from './lib/temporal-cli.js';
import { loadConfigOrExit } from '../core/platform/config-errors.js';

// `npm run temporal:install`: make sure the Temporal CLI is available and print its path.
const cli = await ensureTemporalCli(loadConfigOrExit().TEMPORAL_CLI);
console.log(cli);
