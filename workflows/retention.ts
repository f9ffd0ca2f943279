import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { PurgeCounts } from '../core/privacy/retention.js';

type Activities = ReturnType<typeof createActivities>;

const { purgeExpiredData } = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '5m', maximumAttempts: 5 },
});

/** Started by the retention Schedule: purges what each tenant's retention period has expired. */
export async function retentionPurgeWorkflow(): Promise<PurgeCounts> {
  return purgeExpiredData();
}
