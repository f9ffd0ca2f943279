-- Channels can be disabled (no webhooks accepted, nothing sent) and deleted. Deletion is soft:
-- the channel's conversations and messages stay for export and retention, its credentials and
-- routing identifiers are cleared so the number can be registered again, and it is disabled.
ALTER TABLE channels ADD COLUMN enabled boolean NOT NULL DEFAULT true;
ALTER TABLE channels ADD COLUMN deleted_at timestamptz;
ALTER TABLE channels ADD CONSTRAINT channels_deleted_disabled CHECK (deleted_at IS NULL OR NOT enabled);
-- The default channel (replies, campaigns, POST /webhook/inbound) is always an enabled one.
ALTER TABLE channels ADD CONSTRAINT channels_default_enabled CHECK (NOT is_default OR enabled);
