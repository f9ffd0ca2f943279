import type { Db } from '../core/db/client.js';
import type { Keyring } from '../core/platform/crypto.js';
import { expireTurnJob, type JobOutcome } from '../core/legacy-queue/jobs.js';

export interface LegacyDeps {
  db: Db;
  keyring: Keyring;
}

/** A legacy-mode turn: n8n answers it through the job queue; the workflow waits, then falls back. */
export interface LegacyJobPlan {
  kind: 'legacy_job';
  jobId: string;
  timeoutMs: number;
  fallbackText: string;
}

export function createLegacyActivities({ db, keyring }: LegacyDeps) {
  return {
    /** The workflow stopped waiting for n8n: closes the job, or reports the answer that won the race. */
    async settleLegacyJob(input: { tenantId: string; jobId: string }): Promise<JobOutcome> {
      return expireTurnJob(db, keyring, input);
    },
  };
}
