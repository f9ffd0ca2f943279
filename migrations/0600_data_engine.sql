-- Data Engine: tenants' live data sources, the intents that map questions to lookups, and the audit trail.

CREATE TABLE data_sources (
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  id              text NOT NULL,
  name            text NOT NULL,
  type            text NOT NULL CHECK (type IN ('postgresql', 'mysql', 'rest_api', 'graphql')),
  -- 'parley': Parley's workers connect; 'tenant_worker': the tenant's own data worker does, with its own credentials
  served_by       text NOT NULL DEFAULT 'parley' CHECK (served_by IN ('parley', 'tenant_worker')),
  -- the configuration without secrets: connection (host, urls, header names), queries / endpoints
  config          jsonb NOT NULL,
  -- the secrets (passwords, api keys, header values), Keyring-encrypted JSON
  credentials_enc text,
  position        integer NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE data_intents (
  tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  id               text NOT NULL,
  position         integer NOT NULL,
  patterns         text[] NOT NULL,
  data_source_id   text NOT NULL,
  query            text NOT NULL,
  params           text[] NOT NULL,
  reply_template   text NOT NULL,
  fallback_message text,
  not_found_message text,
  PRIMARY KEY (tenant_id, id)
);

-- The seed's audit table; tenant ids are slugs here, and the customer identifier is a keyed hash.
CREATE TABLE data_access_logs (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id           text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  data_source_id      varchar(255),
  query_type          varchar(100),
  customer_identifier varchar(255),
  accessed_at         timestamptz DEFAULT now(),
  response_time_ms    integer,
  outcome             text NOT NULL,
  error               text,
  via                 text NOT NULL
);
CREATE INDEX data_access_logs_tenant ON data_access_logs (tenant_id, accessed_at);
