import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { NativeConnection, Worker } from '@temporalio/worker';
import { installTemporalRuntime } from '../core/temporal/runtime.js';
import { loadConfig } from '../core/platform/config.js';
import { dataSourcesSchema } from '../core/data-engine/config.js';
import { ConnectorPools } from '../core/data-engine/connectors.js';
import { EgressPolicy } from '../core/platform/egress.js';
import { dataWorkerQueue } from '../core/data-engine/types.js';
import { requireSetting } from '../core/platform/services.js';
import { DataWorkerCodec } from '../core/temporal/codec.js';
import { createLookupActivities } from '../activities/data.js';
import { POLLERS } from './pollers.js';

/**
 * `npm run data-worker -- --tenant acme [--sources sources.json]`: a lookup worker a tenant can
 * run inside its own network. It polls only that tenant's queue, holds the tenant's data source
 * credentials locally (file or DATA_WORKER_SOURCES) and never touches Parley's database.
 */
const { values } = parseArgs({ options: { tenant: { type: 'string' }, sources: { type: 'string' } } });
const config = loadConfig();
const tenant = requireSetting(values.tenant, '--tenant', 'for `npm run data-worker`');
const address = requireSetting(config.TEMPORAL_ADDRESS, 'TEMPORAL_ADDRESS', 'for `npm run data-worker`');
const payloadKey = Buffer.from(
  requireSetting(
    config.PARLEY_DATA_WORKER_KEY,
    'PARLEY_DATA_WORKER_KEY',
    '(from POST /routes/tenants/<id>/data-worker-key) to open the lookup requests',
  ),
  'base64',
);
if (payloadKey.length !== 32) throw new Error('PARLEY_DATA_WORKER_KEY must be 32 bytes, base64-encoded');
const file = values.sources ?? config.DATA_WORKER_SOURCES_FILE;
const raw = file
  ? await readFile(file, 'utf8')
  : requireSetting(config.DATA_WORKER_SOURCES, 'DATA_WORKER_SOURCES or --sources <file>', 'for `npm run data-worker`');
const parsed = dataSourcesSchema.safeParse(JSON.parse(raw));
if (!parsed.success) {
  throw new Error(`invalid data sources: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}
const sources = new Map(parsed.data.data_sources.map((s) => [s.id, s]));

installTemporalRuntime();
// The tenant's own network: reaching its private databases is the point, so no egress policy here.
const pools = new ConnectorPools({ egress: EgressPolicy.unrestricted() });
const connection = await NativeConnection.connect({ address });
const worker = await Worker.create({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  taskQueue: dataWorkerQueue(tenant),
  activities: createLookupActivities({
    // Only this tenant's sources exist here; a request naming another tenant finds nothing.
    resolve: async (tenantId, id) => {
      const source = tenantId === tenant ? sources.get(id) : undefined;
      return source && { source, servedBy: 'tenant_worker' };
    },
    via: 'tenant_worker',
    pools,
  }),
  // Only this tenant's key: the worker can open its own lookups and nothing else of Parley's.
  dataConverter: { payloadCodecs: [new DataWorkerCodec(tenant, payloadKey)] },
  maxConcurrentActivityTaskExecutions: 200,
  ...POLLERS,
});
process.stdout.write(`data worker for tenant ${tenant}: polling ${dataWorkerQueue(tenant)} with ${sources.size} data source(s)\n`);
await worker.run();
await connection.close();
await pools.close();
