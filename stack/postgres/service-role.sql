-- The service's role and database, run by the PostgreSQL superuser: by scripts/stack.sh at every
-- start of the local cluster, and by the postgres image on its first start (docker-compose.yaml).
-- The role owns its database (it runs the migrations) and may create databases (each test file
-- gets one), nothing more. Its password is (re)set each time: a cluster made by an older
-- stack.sh still had the default one. Values come from the environment, never from a command line.
\getenv user MM_PG_USER
\getenv password MM_PG_PASSWORD
\getenv db MM_PG_DATABASE
SET password_encryption = 'scram-sha-256';
ALTER SYSTEM SET password_encryption = 'scram-sha-256';
SELECT format('CREATE ROLE %I', :'user')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB NOSUPERUSER NOCREATEROLE PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SELECT pg_reload_conf();
