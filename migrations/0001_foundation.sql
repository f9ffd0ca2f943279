-- Tenants, keys, channels, contacts, conversations, messages and the relay outbox.

CREATE TABLE tenants (
  id               text PRIMARY KEY,
  name             text NOT NULL,
  fallback_message text NOT NULL,
  mode             text NOT NULL DEFAULT 'native',
  settings         jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name         text NOT NULL,
  prefix       text NOT NULL,
  key_hash     text NOT NULL UNIQUE,
  scopes       text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE channels (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id            text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  provider             text NOT NULL,
  display_phone_number text,
  credentials_enc      text,
  -- provider's routing identifier (Meta phone_number_id, Twilio/Infobip number), unique per provider
  routing_key          text,
  api_base_url         text,
  rate_per_second      integer NOT NULL DEFAULT 80,
  team                 text,
  is_default           boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX channels_routing ON channels (provider, routing_key) WHERE routing_key IS NOT NULL;
CREATE UNIQUE INDEX channels_one_default ON channels (tenant_id) WHERE is_default;

CREATE TABLE contacts (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  phone_hash text NOT NULL,
  phone_enc  text NOT NULL,
  name_enc   text,
  tags       text[] NOT NULL DEFAULT '{}',
  attributes_enc text,
  -- consent: null until the contact or the tenant says either way
  opted_in       boolean,
  consent_at     timestamptz,
  consent_source text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, phone_hash)
);

CREATE TABLE conversations (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  channel_id      uuid NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  contact_id      uuid NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
  workflow_id     text NOT NULL UNIQUE,
  status          text NOT NULL DEFAULT 'open',
  last_inbound_at timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, channel_id, contact_id)
);

CREATE TABLE messages (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq             bigserial NOT NULL UNIQUE,
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  -- inbound: keyed hash of the provider id or of (from, timestamp, text); outbound: the turn's reply key
  dedupe_key      text NOT NULL,
  body_enc        text NOT NULL,
  status          text NOT NULL,
  in_reply_to     uuid[],
  reply_source    text,
  provider_message_id text,
  sent_at         timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX messages_conversation ON messages (conversation_id, seq);

-- Accepted inbound messages waiting to be signalled into their conversation workflow.
CREATE TABLE outbox (
  id              bigserial PRIMARY KEY,
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  message_id      uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_conversation_pending ON outbox (conversation_id, id) WHERE delivered_at IS NULL;

CREATE TABLE knowledge_entries (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  title      text NOT NULL,
  content    text NOT NULL,
  tsv        tsvector GENERATED ALWAYS AS (
               setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', content), 'B')
             ) STORED,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_entries_tenant ON knowledge_entries (tenant_id);
CREATE INDEX knowledge_entries_tsv ON knowledge_entries USING gin (tsv);

-- What the sandbox provider "sent"; the idempotency key makes a retried send a no-op.
CREATE TABLE sandbox_messages (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  channel_id      uuid NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  to_hash         text NOT NULL,
  to_enc          text NOT NULL,
  text_enc        text NOT NULL,
  in_reply_to     uuid[],
  idempotency_key text NOT NULL UNIQUE,
  sent_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_messages_to ON sandbox_messages (tenant_id, to_hash, sent_at);

-- The seed's legacy job queue (its columns kept as they were).
CREATE TABLE jobs (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  payload    jsonb NOT NULL,
  status     varchar(20) NOT NULL DEFAULT 'queued',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  tenant_id  text REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE INDEX jobs_status ON jobs (status, created_at);
