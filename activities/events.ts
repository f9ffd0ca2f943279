import type { Db } from '../core/db/client.js';
import { attemptDelivery } from '../core/events/deliver.js';
import type { Keyring } from '../core/platform/crypto.js';
import { asActivity } from '../core/temporal/failures.js';
import type { DeliverEventInput, EventAttemptOutcome } from '../contracts/events.js';

export function createEventActivities(deps: { db: Db; keyring: Keyring }) {
  return {
    /** One signed HTTP attempt of an event delivery, through the egress policy; recorded on the delivery row. */
    async deliverEvent(input: DeliverEventInput): Promise<EventAttemptOutcome> {
      return asActivity(() => attemptDelivery(deps.db, deps.keyring, input));
    },
  };
}
