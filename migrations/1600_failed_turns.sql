-- Turns that kept failing on their own input: answered with the tenant's fallback message
-- instead of being retried forever, and kept here as the alert `GET /` counts.
-- One row per turn (its reply key), so a retried or replayed turn records it once.
CREATE TABLE failed_turns (
  reply_key text PRIMARY KEY,
  tenant_id text NOT NULL,
  conversation_id uuid NOT NULL,
  messages integer NOT NULL,
  failure_type text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failed_turns_created_at ON failed_turns (created_at);
