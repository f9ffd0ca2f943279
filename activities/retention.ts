import type { Db } from '../core/db/client.js';
import type { PurgeCounts } from '../contracts/retention.js';
import { purgeExpired } from '../core/privacy/retention.js';

export function createRetentionActivities({ db }: { db: Db }) {
  return {
    /** One pass of every tenant's retention; safe to repeat (it deletes what is due). */
    async purgeExpiredData(): Promise<PurgeCounts> {
      return purgeExpired(db);
    },
  };
}
