/** Outbound event delivery: what crosses Temporal between the event relay, the delivery workflow and its activity. */
import { defineSignal } from '@temporalio/workflow';

/** One delivery workflow per endpoint and conversation (`orderKey`), so a conversation's events go out in order. */
export interface EventDeliveryInput {
  tenantId: string;
  orderKey: string;
  /** Deliveries carried over a continue-as-new, oldest first. */
  pending?: EventDeliveryRef[];
}

/** A delivery row at a generation (redeliver and replay bump it). */
export interface EventDeliveryRef {
  id: string;
  generation: number;
}

export interface EventDeliveriesSignal {
  deliveries: EventDeliveryRef[];
}

/** New (or re-armed) deliveries for the workflow's endpoint and conversation, oldest first. */
export const eventDeliveriesSignal = defineSignal<[EventDeliveriesSignal]>('eventDeliveries');

export type EventDeliveryWorkflow = (input: EventDeliveryInput) => Promise<void>;

export interface DeliverEventInput extends EventDeliveryRef {
  /** 1-based HTTP attempt of this delivery within the workflow. */
  attempt: number;
  /** When the workflow took the delivery: retries stop 72 hours after it. */
  firstAttemptAt: string;
}

export type EventAttemptOutcome = { kind: 'delivered' } | { kind: 'failed' } | { kind: 'skipped' } | { kind: 'retry'; delayMs: number };

export const eventDeliveryWorkflowId = (tenantId: string, orderKey: string) => `events/${tenantId}/${orderKey}`;
