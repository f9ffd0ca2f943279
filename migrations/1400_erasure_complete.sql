-- Complete erasure (issue 17).

-- The workflow a lookup ran in: erasure finds a customer's standalone lookup workflows
-- (data/<tenant>/<uuid>, started by /routes/data/nl-query and /routes/data/lookup) from their
-- keyed phone hash in customer_identifier, and anonymises the rows it leaves for the metrics.
ALTER TABLE data_access_logs ADD COLUMN workflow_id text;
CREATE INDEX data_access_logs_customer ON data_access_logs (tenant_id, customer_identifier)
  WHERE customer_identifier IS NOT NULL;

-- Outbound provider message ids (Meta's wamids embed the customer's number) are stored as the
-- keyring's blind index from now on, like inbound ones: messages.provider_message_id,
-- campaign_sends.provider_message_id and delivery_events.provider_message_id. SQL holds no key,
-- so the values written before this release are converted by core/messaging/provider-ids.ts when
-- the API or worker starts; until then status callbacks still find them by the raw id.
