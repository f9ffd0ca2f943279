#!/bin/sh
# docker-compose's PostgreSQL runs this once, on an empty data directory, as the superuser.
# Parley never connects as a superuser: parley_owner owns the schema and runs the migrations,
# parley_app (the API and workers) reads and writes rows. Neither can create roles or databases.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_pw="$PARLEY_OWNER_PASSWORD" -v app_pw="$PARLEY_APP_PASSWORD" <<'SQL'
CREATE ROLE parley_owner WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION PASSWORD :'owner_pw';
CREATE ROLE parley_app WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION PASSWORD :'app_pw';
CREATE DATABASE parley OWNER parley_owner;
\connect parley
-- pgvector needs a superuser to install; the migration then finds it in place.
CREATE EXTENSION IF NOT EXISTS vector;
ALTER SCHEMA public OWNER TO parley_owner;
GRANT CONNECT, TEMPORARY ON DATABASE parley TO parley_app;
GRANT USAGE ON SCHEMA public TO parley_app;
ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO parley_app;
ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO parley_app;
SQL
