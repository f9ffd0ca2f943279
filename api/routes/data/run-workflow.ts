import { randomUUID } from 'node:crypto';
import type { ApiDeps } from '../../deps.js';

/** Runs a data workflow on Parley's worker and waits for its result (lookups have a 10 s budget). */
export function dataWorkflowRunner(deps: ApiDeps) {
  return async function execute<T>(workflow: string, args: unknown[], tenant: string): Promise<T> {
    return deps.temporal.workflow.execute(workflow, {
      taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
      workflowId: `data/${tenant}/${randomUUID()}`,
      args,
      workflowExecutionTimeout: '30s',
    }) as Promise<T>;
  };
}
