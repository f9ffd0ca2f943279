-- Lookups for sources a tenant's own data worker serves. The `dataLookup` / `testDataSource`
-- activity records one row per attempt and completes asynchronously; the data worker pulls it
-- over the API (GET …/data-worker/next, with a lease) and answers it (POST …/result), which
-- completes the waiting activity by its task token. Nothing here is a Temporal credential the
-- tenant sees: the token stays in Parley.
CREATE TABLE remote_lookups (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  kind             text NOT NULL CHECK (kind IN ('lookup', 'test')),
  data_source_id   text NOT NULL,
  -- Keyring-encrypted: the activity's task token (base64), and {query, params, order} of the lookup
  task_token_enc   text,
  params_enc       text,
  activity_id      text NOT NULL,
  workflow_id      text,
  -- one attempt's time for the source (the activity's attempt timeout)
  timeout_ms       integer NOT NULL,
  -- 'pending' until answered: 'completed' (rows), 'failed' (the worker reported an error),
  -- 'expired' (the activity had stopped waiting). The encrypted columns are cleared once settled.
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed', 'expired')),
  -- held by a data worker until then; an expired lease is offered again before the deadline
  lease_expires_at timestamptz,
  offers           integer NOT NULL DEFAULT 0,
  -- when Temporal first scheduled the activity (retries included in the lookup's total time)
  scheduled_at     timestamptz NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  -- the attempt's start-to-close (or the whole lookup budget, if sooner): never offered after it
  deadline         timestamptz NOT NULL,
  settled_at       timestamptz
);
CREATE INDEX remote_lookups_pending ON remote_lookups (tenant_id, created_at) WHERE status = 'pending';
CREATE INDEX remote_lookups_deadline ON remote_lookups (tenant_id, deadline);
