import { Context } from '@temporalio/activity';
import type { OutboundDeps } from '../core/messaging/outbound.js';
import type {
  FinishPulseRunInput,
  PulsePageInput,
  PulsePageResult,
  PulseRunConfig,
  RunCounts,
  StartPulseRunInput,
} from '../contracts/pulse.js';
import { finishRun, sendPage, startRun } from '../core/pulse/send.js';

export type PulseDeps = OutboundDeps;

export function createPulseActivities(deps: PulseDeps) {
  return {
    /** Snapshots the campaign and opens the run row; null when the campaign was deleted meanwhile. */
    async startPulseRun(input: StartPulseRunInput): Promise<PulseRunConfig | null> {
      return startRun(deps, input);
    },

    /** Sends one page of the audience (core/pulse/send.ts), heartbeating as it goes. */
    async sendPulsePage(input: PulsePageInput): Promise<PulsePageResult> {
      const ctx = Context.current();
      return sendPage(deps, input, { heartbeat: () => ctx.heartbeat(), signal: ctx.cancellationSignal });
    },

    async finishPulseRun(input: FinishPulseRunInput): Promise<RunCounts | null> {
      return finishRun(deps, input);
    },
  };
}
