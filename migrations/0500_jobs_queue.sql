-- The legacy n8n job queue: leases, attempts, job types and the conversation a job answers.
-- `payload` keeps only non-PII fields (job_type, tenant_id, timestamp); the full payload n8n
-- receives is stored encrypted in `payload_enc`.

ALTER TABLE jobs
  ADD COLUMN job_type         text NOT NULL DEFAULT 'message',
  ADD COLUMN payload_enc      text,
  ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
  ADD COLUMN max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
  ADD COLUMN lease_expires_at timestamptz,
  -- encrypted JSON: what n8n reported through /complete ({"result": …}) or /fail ({"error": …})
  ADD COLUMN result_enc       text,
  ADD COLUMN conversation_id  uuid REFERENCES conversations(id) ON DELETE CASCADE,
  ADD COLUMN workflow_id      text,
  -- the turn's reply key (`reply:<first message id>`): one job per turn, and the dedupe key of n8n's reply
  ADD COLUMN reply_key        text,
  ADD COLUMN message_ids      uuid[],
  ADD COLUMN reply_message_id uuid REFERENCES messages(id) ON DELETE SET NULL,
  ADD COLUMN finished_at      timestamptz;

CREATE UNIQUE INDEX jobs_reply_key ON jobs (tenant_id, reply_key) WHERE reply_key IS NOT NULL;
-- Claims walk a tenant's open jobs oldest first; expired leases are found by their own index.
CREATE INDEX jobs_open ON jobs (tenant_id, created_at, id) WHERE status IN ('queued', 'processing');
CREATE INDEX jobs_lease ON jobs (tenant_id, lease_expires_at) WHERE status = 'processing';
