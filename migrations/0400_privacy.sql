-- Privacy: retention per tenant, consent history, erasure receipts (which hold no PII).

ALTER TABLE tenants ADD COLUMN retention_days integer CHECK (retention_days IS NULL OR retention_days > 0);

-- Every opt-in and opt-out as it happened; contacts.opted_in/consent_at/consent_source hold the latest.
CREATE TABLE consent_events (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  contact_id uuid NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
  opted_in   boolean NOT NULL,
  source     text NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_contact ON consent_events (contact_id, at);

-- Proof that an erasure happened: ids and counts only.
CREATE TABLE erasures (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  contact_id uuid NOT NULL,
  erased     jsonb NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erasures_tenant ON erasures (tenant_id, at);

-- Retention purges scan by age.
CREATE INDEX messages_tenant_created ON messages (tenant_id, created_at);
CREATE INDEX conversations_tenant_closed ON conversations (tenant_id, updated_at) WHERE status = 'closed';
