import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import type { MediaDownloadWorkflow } from '../contracts/delivery.js';
import { MEDIA_DOWNLOAD_RETRY } from '../contracts/retry-policies.js';

const { downloadMedia } = proxyActivities<Activities>({ startToCloseTimeout: '2m', retry: MEDIA_DOWNLOAD_RETRY });

/** Downloads one inbound media item (started by the webhook once the message is durable). */
export const mediaDownloadWorkflow: MediaDownloadWorkflow = async (input) => downloadMedia(input);
