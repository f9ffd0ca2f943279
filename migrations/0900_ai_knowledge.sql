-- AI answers: tenant AI profiles, knowledge documents cut into chunks (full-text + embeddings),
-- token usage, AI events, and the conversation hand-over flag.

CREATE TABLE ai_profiles (
  tenant_id            text PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
  base_url             text NOT NULL,
  api_key_enc          text NOT NULL,
  chat_model           text NOT NULL,
  embedding_model      text NOT NULL,
  business_description text,
  tone                 text,
  language             text,
  temperature          real NOT NULL DEFAULT 0.2,
  monthly_token_budget bigint,
  confidence_threshold real NOT NULL DEFAULT 0.6,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- An uploaded document, or one of the tenant's PUT …/knowledge entries (kind 'entry').
CREATE TABLE knowledge_documents (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  kind            text NOT NULL CHECK (kind IN ('upload', 'entry')),
  title           text NOT NULL,
  mime            text NOT NULL,
  -- the upload as received, kept only until its text is extracted
  raw             bytea,
  status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'chunking', 'embedding', 'ready', 'failed')),
  chunks_total    integer NOT NULL DEFAULT 0,
  chunks_embedded integer NOT NULL DEFAULT 0,
  error           text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_documents_tenant ON knowledge_documents (tenant_id, kind);

-- Embeddings are unit vectors, so a dot product is the cosine similarity.
CREATE TABLE knowledge_chunks (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  document_id     uuid NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
  ord             integer NOT NULL,
  title           text NOT NULL,
  content         text NOT NULL,
  tsv             tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', content), 'B')
                  ) STORED,
  embedding       real[],
  embedding_model text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (document_id, ord)
);
CREATE INDEX knowledge_chunks_tenant ON knowledge_chunks (tenant_id, embedding_model);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
CREATE INDEX knowledge_chunks_pending ON knowledge_chunks (document_id) WHERE embedding IS NULL;

-- Exact cosine over stored arrays, for servers without pgvector. A PL/pgSQL loop measured
-- faster than sum() over unnest() on PostgreSQL 15.
CREATE FUNCTION parley_dot(a real[], b real[]) RETURNS float8
  LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
  AS $$
DECLARE
  s float8 := 0;
  n integer := coalesce(least(array_length(a, 1), array_length(b, 1)), 0);
BEGIN
  FOR i IN 1..n LOOP
    s := s + a[i] * b[i];
  END LOOP;
  RETURN s;
END $$;

-- pgvector where the server has it (docker-compose's image does; a plain Debian PostgreSQL does not).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
    CREATE EXTENSION IF NOT EXISTS vector;
    ALTER TABLE knowledge_chunks ADD COLUMN embedding_vec vector;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'pgvector available but not installable by this role; using exact cosine over arrays';
END $$;

CREATE TABLE ai_usage (
  id                bigserial PRIMARY KEY,
  tenant_id         text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  conversation_id   uuid REFERENCES conversations(id) ON DELETE SET NULL,
  purpose           text NOT NULL,
  model             text NOT NULL,
  prompt_tokens     integer NOT NULL,
  completion_tokens integer NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_usage_tenant_month ON ai_usage (tenant_id, created_at);

CREATE TABLE ai_events (
  id              bigserial PRIMARY KEY,
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  conversation_id uuid REFERENCES conversations(id) ON DELETE SET NULL,
  kind            text NOT NULL,
  detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- set for events recorded once (budget_exhausted per month)
  once_key        text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, once_key)
);
CREATE INDEX ai_events_tenant ON ai_events (tenant_id, created_at);

-- The knowledge chunks an outbound reply was grounded in.
ALTER TABLE messages ADD COLUMN source_chunk_ids uuid[];

ALTER TABLE conversations
  ADD COLUMN needs_human     boolean NOT NULL DEFAULT false,
  -- model_requested | low_confidence; the model's own note may echo the customer: encrypted
  ADD COLUMN handover_reason text,
  ADD COLUMN handover_note_enc text,
  ADD COLUMN handed_over_at  timestamptz;
