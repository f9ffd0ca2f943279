import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';

type Activities = ReturnType<typeof createActivities>;

const { downloadMedia } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '2m',
    maximumAttempts: 10,
    nonRetryableErrorTypes: ['NotFound', 'ProviderRejected'],
  },
});

/** Downloads one inbound media item (started by the webhook once the message is durable). */
export async function mediaDownloadWorkflow(input: { tenantId: string; mediaId: string }): Promise<{ status: string }> {
  return downloadMedia(input);
}
