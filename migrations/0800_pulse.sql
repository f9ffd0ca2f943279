-- Relational Pulse: campaigns (one Temporal Schedule each), their runs and one row per (run, contact).

CREATE TABLE pulse_campaigns (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name            text NOT NULL,
  cron            text NOT NULL,
  timezone        text NOT NULL,
  -- { "tags": [...] }: opted-in contacts carrying any of the tags (all opted-in contacts when empty)
  audience        jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- { "template", "window_template"?, "variants"? }
  message         jsonb NOT NULL,
  rate_per_second integer NOT NULL DEFAULT 80,
  overlap         text NOT NULL DEFAULT 'skip',
  schedule_id     text NOT NULL UNIQUE,
  paused          boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pulse_campaigns_tenant ON pulse_campaigns (tenant_id, created_at);

-- One row per campaign workflow (the Schedule's workflow id, stable across continue-as-new).
CREATE TABLE pulse_runs (
  id          text PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  campaign_id uuid NOT NULL REFERENCES pulse_campaigns(id) ON DELETE CASCADE,
  status      text NOT NULL DEFAULT 'running',
  targeted    integer NOT NULL DEFAULT 0,
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX pulse_runs_campaign ON pulse_runs (campaign_id, started_at DESC);

-- The (run, contact) key is what makes a run idempotent: a contact is claimed once per run,
-- and a claim left 'sending' by a killed worker is resent with the same provider idempotency key.
CREATE TABLE campaign_sends (
  run_id              text NOT NULL REFERENCES pulse_runs(id) ON DELETE CASCADE,
  contact_id          uuid NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
  tenant_id           text NOT NULL,
  status              text NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'skipped_opted_out', 'skipped_window')),
  template_name       text,
  provider_message_id text,
  error               text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  sent_at             timestamptz,
  PRIMARY KEY (run_id, contact_id)
);

-- Audience paging: opted-in contacts of a tenant in id order; tag filter via GIN.
CREATE INDEX contacts_audience ON contacts (tenant_id, id) WHERE opted_in;
CREATE INDEX contacts_tags ON contacts USING gin (tags);
-- The 24-hour window check: latest inbound per contact.
CREATE INDEX conversations_contact ON conversations (tenant_id, contact_id);

-- Which approved template the sandbox "sent" (null for free-form text).
ALTER TABLE sandbox_messages ADD COLUMN template_name text;
