import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { PulseRunConfig } from '../activities/pulse.js';

type Activities = ReturnType<typeof createActivities>;

export interface PulseCampaignInput {
  tenantId: string;
  campaignId: string;
  /** Carried across continue-as-new; absent on the Schedule's first start. */
  progress?: { config: PulseRunConfig; cursor: string | null; nextSendAt: number; paused?: boolean };
}

/** Sent by the API when the campaign is paused (true) or resumed (false): a run in progress follows. */
export const pausedSignal = defineSignal<[boolean]>('paused');

/** Continue-as-new after this many pages (each page adds about six events), keeping history small. */
export const PAGES_PER_RUN = 10;

/** A page holds about five seconds of sends: long enough to amortise a round trip, short enough to retry cheaply. */
export function pageSizeFor(ratePerSecond: number): number {
  return Math.max(10, Math.min(1000, Math.round(ratePerSecond * 5)));
}

const { startPulseRun, finishPulseRun } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '30s', nonRetryableErrorTypes: ['BadRequest', 'NotFound'] },
});

/**
 * One campaign run, started by the campaign's Schedule. The audience never enters history:
 * the workflow holds only a cursor (the last contact id) and asks an activity to send the
 * next page. Its workflow id (the Schedule's action id) names the run in campaign_sends, so
 * every retry and every continue-as-new of this run shares one (run, contact) ledger.
 */
export async function pulseCampaignWorkflow(input: PulseCampaignInput): Promise<void> {
  const runId = workflowInfo().workflowId;
  let paused = input.progress?.paused ?? false;
  let resumes = 0;
  setHandler(pausedSignal, (value) => {
    paused = value;
    if (!value) resumes++;
  });
  let progress = input.progress;
  if (!progress) {
    const config = await startPulseRun({ tenantId: input.tenantId, campaignId: input.campaignId, runId });
    if (!config) return;
    progress = { config, cursor: null, nextSendAt: 0 };
  }
  const pageSize = pageSizeFor(progress.config.ratePerSecond);
  const { sendPulsePage } = proxyActivities<Activities>({
    startToCloseTimeout: Math.ceil((pageSize / progress.config.ratePerSecond) * 1000) + 60_000,
    heartbeatTimeout: '15s',
    retry: { initialInterval: '1s', maximumInterval: '30s', nonRetryableErrorTypes: ['BadRequest', 'NotFound'] },
  });

  let pages = 0;
  let cursor = progress.cursor;
  let nextSendAt = progress.nextSendAt;
  try {
    for (;;) {
      await condition(() => !paused);
      const resumesBefore = resumes;
      const page = await sendPulsePage({ config: progress.config, cursor, pageSize, nextSendAt });
      cursor = page.nextCursor;
      nextSendAt = page.nextSendAt;
      // The page saw the campaign paused: wait for a resume (even if the pause signal was lost),
      // unless one already arrived while the page was stopping.
      if (page.paused) paused ||= resumes === resumesBefore;
      else if (cursor === null) break;
      if (++pages >= PAGES_PER_RUN || workflowInfo().continueAsNewSuggested) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof pulseCampaignWorkflow>({ ...input, progress: { config: progress.config, cursor, nextSendAt, paused } });
      }
    }
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() => finishPulseRun({ runId, status: 'cancelled' }));
    }
    throw err;
  }
  await finishPulseRun({ runId, status: 'completed' });
}
