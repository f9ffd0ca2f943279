-- Outbound events (Standard Webhooks). An event row is written in the same statement or
-- transaction as the fact it reports, with one delivery row per subscribed endpoint; the event
-- relay hands pending deliveries to their delivery workflow (one per endpoint and conversation).
CREATE TABLE webhook_endpoints (
  id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id               text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  url                     text NOT NULL,
  description             text,
  -- event types, or '*' for every type
  events                  text[] NOT NULL,
  include_message_text    boolean NOT NULL DEFAULT false,
  include_phone           boolean NOT NULL DEFAULT false,
  -- keyring-encrypted `whsec_…`; the previous one keeps signing until previous_secret_expires_at
  secret_enc              text NOT NULL,
  previous_secret_enc     text,
  previous_secret_expires_at timestamptz,
  enabled                 boolean NOT NULL DEFAULT true,
  disabled_reason         text,
  -- the first failed attempt since the last success: 24 h of failures disables the endpoint
  failing_since           timestamptz,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

CREATE TABLE events (
  -- derived from the fact: 'evt_' + hash of tenant, type and the fact's key (message id, …)
  id              text PRIMARY KEY,
  seq             bigserial NOT NULL,
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  type            text NOT NULL,
  conversation_id uuid,
  message_id      uuid,
  contact_id      uuid,
  -- facts beyond the ids, never message text or phone numbers (those are read encrypted at send time)
  data            jsonb NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_tenant_created ON events (tenant_id, created_at);

CREATE TABLE event_deliveries (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_id         text NOT NULL REFERENCES events(id) ON DELETE CASCADE,
  event_seq        bigint NOT NULL,
  -- the ordering key: deliveries of one endpoint and conversation go out one after another
  order_key        text NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  -- bumped by redeliver and replay, so the delivery workflow takes the row again
  generation       integer NOT NULL DEFAULT 0,
  dispatched_generation integer,
  dispatch_attempts integer NOT NULL DEFAULT 0,
  next_dispatch_at timestamptz NOT NULL DEFAULT now(),
  attempts         integer NOT NULL DEFAULT 0,
  last_status_code integer,
  last_latency_ms  integer,
  last_error       text,
  next_retry_at    timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  UNIQUE (endpoint_id, event_id)
);
CREATE INDEX event_deliveries_undispatched ON event_deliveries (event_seq)
  WHERE dispatched_generation IS DISTINCT FROM generation;
CREATE INDEX event_deliveries_endpoint ON event_deliveries (endpoint_id, created_at);

-- Wakes the event relays (every API replica listens) when deliveries are created or re-armed,
-- at commit time, whichever process recorded the fact.
CREATE FUNCTION notify_event_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('parley_event_deliveries', '');
  RETURN NULL;
END $$;
CREATE TRIGGER event_deliveries_notify AFTER INSERT OR UPDATE OF generation ON event_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION notify_event_deliveries();
