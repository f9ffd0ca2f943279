import type { Db } from '../core/db/client.js';
import type { Keyring } from '../core/platform/crypto.js';
import { expireTurnJob } from '../core/legacy-queue/jobs.js';
import type { JobOutcome, LegacyJobRef } from '../contracts/conversation.js';

export interface LegacyDeps {
  db: Db;
  keyring: Keyring;
}

export function createLegacyActivities({ db, keyring }: LegacyDeps) {
  return {
    /** The workflow stopped waiting for n8n: closes the job, or reports the answer that won the race. */
    async settleLegacyJob(input: LegacyJobRef): Promise<JobOutcome> {
      return expireTurnJob(db, keyring, input);
    },
  };
}
