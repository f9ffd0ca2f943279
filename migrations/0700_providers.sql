-- Real WhatsApp providers: delivery statuses, send pacing, inbound media, channel teams and templates.

-- The team owning a channel's conversations, copied when the conversation starts (handover reads it).
ALTER TABLE conversations ADD COLUMN team text;

-- Meta's GET verification handshake carries no phone_number_id: find the channel by its token's blind index.
ALTER TABLE channels ADD COLUMN verify_token_hash text;
CREATE INDEX channels_verify_token ON channels (verify_token_hash) WHERE verify_token_hash IS NOT NULL;
-- Template used outside the 24-hour window: {"name": "...", "language": "en"} (Twilio: name = Content SID).
ALTER TABLE channels ADD COLUMN reopen_template jsonb;

-- Latest delivery state of an outbound message (sent < delivered < read; failed wins), with the provider's error.
ALTER TABLE messages ADD COLUMN delivery_status text;
ALTER TABLE messages ADD COLUMN delivery_error_code text;
ALTER TABLE messages ADD COLUMN delivery_error text;
ALTER TABLE messages ADD COLUMN delivery_updated_at timestamptz;
-- Inbound: the id of the button or list row the customer chose (the text holds its title), for flows.
ALTER TABLE messages ADD COLUMN choice_id text;
CREATE INDEX messages_outbound_provider_id ON messages (tenant_id, provider_message_id)
  WHERE direction = 'outbound' AND provider_message_id IS NOT NULL;

-- Every status callback, kept by provider message id: a status may arrive before the send's own
-- response has told us that id, and statuses arrive in any order. The message's state is derived from these.
CREATE TABLE delivery_events (
  tenant_id           text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  provider_message_id text NOT NULL,
  status              text NOT NULL CHECK (status IN ('sent', 'delivered', 'read', 'failed')),
  error_code          text,
  error_title         text,
  occurred_at         timestamptz NOT NULL,
  received_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, provider_message_id, status)
);

-- Per-number send pacing shared by all worker replicas: the next free send slot (core/pacing.ts).
CREATE TABLE channel_send_pacing (
  channel_id   uuid PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
  next_slot_at timestamptz NOT NULL
);

-- Media received with an inbound message: metadata at once, content after the download activity.
CREATE TABLE message_media (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  message_id    uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  channel_id    uuid NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  position      integer NOT NULL DEFAULT 0,
  kind          text NOT NULL,
  -- provider's reference: Meta media id, Twilio/Infobip URL (encrypted: URLs can embed account ids)
  ref_enc       text NOT NULL,
  mime_type     text,
  sha256        text,
  filename_enc  text,
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'downloaded', 'failed')),
  size_bytes    integer,
  content_enc   bytea,
  content_key   text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  downloaded_at timestamptz,
  UNIQUE (message_id, position)
);
CREATE INDEX message_media_message ON message_media (tenant_id, message_id);
