import { fakeInventory } from '../test/helpers/fake-sources.js';

/** The benchmark's REST source in its own process, as a tenant's API would be: `<latency ms> <api key>`. */
const source = fakeInventory(process.argv[3] ?? 'bench-key');
source.latencyMs = Number(process.argv[2] ?? 50);
await source.start();
process.stdout.write(`${source.url}\n`);
process.once('SIGTERM', () => void source.stop().then(() => process.exit(0)));
