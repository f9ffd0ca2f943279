import { randomUUID } from 'node:crypto';
import type { WorkflowResultType } from '@temporalio/client';
import type { DataLookupWorkflow, DataSourceTestWorkflow } from '../../../contracts/data-lookup.js';
import type { ApiDeps } from '../../deps.js';

/** Runs a data workflow on Parley's worker and waits for its result (lookups have a 10 s budget). */
export function dataWorkflowRunner(deps: ApiDeps) {
  return async function execute<W extends DataLookupWorkflow | DataSourceTestWorkflow>(
    workflowType: string,
    args: Parameters<W>,
    tenant: string,
  ): Promise<WorkflowResultType<W>> {
    return deps.temporal.workflow.execute<W>(workflowType, {
      taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
      workflowId: `data/${tenant}/${randomUUID()}`,
      args,
      workflowExecutionTimeout: '30s',
    });
  };
}
