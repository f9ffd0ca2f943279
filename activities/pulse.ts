import { Context } from '@temporalio/activity';
import type { PulseAudience, PulseMessage } from '../core/db/schema.js';
import type { OutboundDeps } from '../core/messaging/outbound.js';
import type { RunCounts } from '../core/pulse/runs.js';
import { finishRun, sendPage, startRun } from '../core/pulse/send.js';

export type PulseDeps = OutboundDeps;

/** A run's snapshot of its campaign, taken at start so an edit mid-run does not change a run half-way. */
export interface PulseRunConfig {
  tenantId: string;
  campaignId: string;
  runId: string;
  channelId: string;
  ratePerSecond: number;
  audience: PulseAudience;
  message: PulseMessage;
  /** Epoch ms the run began (database clock). */
  startedAt: number;
}

export interface PulsePageInput {
  config: PulseRunConfig;
  /** Last contact id handled by the previous page (audience order is by id). */
  cursor: string | null;
  pageSize: number;
  /** Epoch ms when the next send is due, so pacing carries across pages. */
  nextSendAt: number;
}

export interface PulsePageResult {
  /** With `paused`, where to resume; otherwise where the next page starts, null when the audience is done. */
  nextCursor: string | null;
  nextSendAt: number;
  handled: number;
  /** The campaign was paused: the page stopped early and the run waits for resume. */
  paused: boolean;
}

export function createPulseActivities(deps: PulseDeps) {
  return {
    /** Snapshots the campaign and opens the run row; null when the campaign was deleted meanwhile. */
    async startPulseRun(input: { tenantId: string; campaignId: string; runId: string }): Promise<PulseRunConfig | null> {
      return startRun(deps, input);
    },

    /** Sends one page of the audience (core/pulse/send.ts), heartbeating as it goes. */
    async sendPulsePage(input: PulsePageInput): Promise<PulsePageResult> {
      const ctx = Context.current();
      return sendPage(deps, input, { heartbeat: () => ctx.heartbeat(), signal: ctx.cancellationSignal });
    },

    async finishPulseRun(input: { runId: string; status: 'completed' | 'cancelled' }): Promise<RunCounts | null> {
      return finishRun(deps, input);
    },
  };
}
