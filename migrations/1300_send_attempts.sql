-- Ambiguous provider sends are reconciled, never blindly repeated. An outbound message records
-- each provider call it makes: send_started_at is set before the call and cleared only when the
-- provider surely did not take the message, so a retried send (after a timeout, a gateway 5xx or
-- a worker crash) knows an earlier call may have gone out and reconciles before calling again.
ALTER TABLE messages ADD COLUMN send_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN send_started_at timestamptz;
