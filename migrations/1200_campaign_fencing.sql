-- Fencing campaign page attempts. Temporal retries a page attempt that missed its heartbeat
-- while that attempt may still run; each attempt takes the run's next fence, stamps it on the
-- campaign_sends rows it claims, and sends a row only while the run's fence is still its own.
-- A row checked for sending holds a lease, renewed while the provider call runs: a newer
-- attempt re-claims a row left 'sending' only once that lease has lapsed.
ALTER TABLE pulse_runs ADD COLUMN fence integer NOT NULL DEFAULT 0;
ALTER TABLE campaign_sends ADD COLUMN fence integer NOT NULL DEFAULT 0;
ALTER TABLE campaign_sends ADD COLUMN lease_until timestamptz;
