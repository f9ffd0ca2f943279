import type { WorkerOptions } from '@temporalio/worker';

/**
 * Pollers that scale with the server's backlog. A fixed ten (two of them on the non-sticky queue
 * every new workflow's first task goes to) left a burst of new workflows waiting seconds in task
 * queue partitions no poller was on: 100 lookups at once took 2.6–4.8 s end to end at p99, 0.9–1.4 s
 * with these (bench:lookups, same machine).
 */
export const POLLERS = {
  workflowTaskPollerBehavior: { type: 'autoscaling' },
  activityTaskPollerBehavior: { type: 'autoscaling' },
} as const satisfies Pick<WorkerOptions, 'workflowTaskPollerBehavior' | 'activityTaskPollerBehavior'>;
