import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import type { RetentionPurgeWorkflow } from '../contracts/retention.js';
import { RETENTION_PURGE_RETRY } from '../contracts/retry-policies.js';

const { purgeExpiredData } = proxyActivities<Activities>({ startToCloseTimeout: '10m', retry: RETENTION_PURGE_RETRY });

/** Started by the retention Schedule: purges what each tenant's retention period has expired. */
export const retentionPurgeWorkflow: RetentionPurgeWorkflow = async () => purgeExpiredData();
