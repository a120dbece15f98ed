-- The full Temporal server's role and databases (MM_TEMPORAL_MODE=server), run by the PostgreSQL
-- superuser at every start of scripts/stack.sh in that mode. A role of its own: the service's role
-- never reads Temporal's tables, nor Temporal the service's. Values come from the environment.
\getenv password MM_TEMPORAL_PG_PASSWORD
SET password_encryption = 'scram-sha-256';
SELECT 'CREATE ROLE temporal' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'temporal') \gexec
SELECT format('ALTER ROLE temporal LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'password') \gexec
SELECT 'CREATE DATABASE temporal OWNER temporal'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'temporal') \gexec
SELECT 'CREATE DATABASE temporal_visibility OWNER temporal'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'temporal_visibility') \gexec
