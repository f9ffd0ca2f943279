import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import { pausedSignal, type PulseCampaignWorkflow } from '../contracts/pulse.js';
import { PULSE_STEP_RETRY } from '../contracts/retry-policies.js';

/** Continue-as-new after this many pages (each page adds about six events), keeping history small. */
export const PAGES_PER_RUN = 10;

/** A page holds about five seconds of sends: long enough to amortise a round trip, short enough to retry cheaply. */
export function pageSizeFor(ratePerSecond: number): number {
  return Math.max(10, Math.min(1000, Math.round(ratePerSecond * 5)));
}

const { startPulseRun, finishPulseRun } = proxyActivities<Activities>({ startToCloseTimeout: '30s', retry: PULSE_STEP_RETRY });

/**
 * One campaign run, started by the campaign's Schedule. The audience never enters history:
 * the workflow holds only a cursor (the last contact id) and asks an activity to send the
 * next page. Its workflow id (the Schedule's action id) names the run in campaign_sends, so
 * every retry and every continue-as-new of this run shares one (run, contact) ledger.
 */
export const pulseCampaignWorkflow: PulseCampaignWorkflow = async (input) => {
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
    retry: PULSE_STEP_RETRY,
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
        await continueAsNew<PulseCampaignWorkflow>({ ...input, progress: { config: progress.config, cursor, nextSendAt, paused } });
      }
    }
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() => finishPulseRun({ runId, status: 'cancelled' }));
    }
    throw err;
  }
  await finishPulseRun({ runId, status: 'completed' });
};
