/** Relational Pulse: one campaign run, started by the campaign's Schedule. */

import { defineSignal } from '@temporalio/workflow';

/** Which contacts a campaign reaches (stored as `pulse_campaigns.audience`). */
export interface PulseAudience {
  tags?: string[];
}

/** What a campaign sends (stored as `pulse_campaigns.message`). */
export interface PulseMessage {
  template: string;
  window_template?: string;
  variants?: { tags: string[]; template: string }[];
}

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

export interface PulseCampaignInput {
  tenantId: string;
  campaignId: string;
  /** Carried across continue-as-new; absent on the Schedule's first start. */
  progress?: { config: PulseRunConfig; cursor: string | null; nextSendAt: number; paused?: boolean };
}

/** Sent by the API when the campaign is paused (true) or resumed (false): a run in progress follows. */
export const pausedSignal = defineSignal<[boolean]>('paused');

export type PulseCampaignWorkflow = (input: PulseCampaignInput) => Promise<void>;

export interface StartPulseRunInput {
  tenantId: string;
  campaignId: string;
  runId: string;
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

export interface FinishPulseRunInput {
  runId: string;
  status: 'completed' | 'cancelled';
}

export interface RunCounts {
  targeted: number;
  sent: number;
  failed: number;
  skipped_opted_out: number;
  skipped_window: number;
}
