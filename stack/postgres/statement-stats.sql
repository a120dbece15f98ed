-- Statement statistics for the local cluster only (scripts/stack.sh starts it with
-- pg_stat_statements preloaded): the benchmarks read them per phase to show where PostgreSQL's time
-- goes. The service's role may read them (all databases' statements: the benchmarks run in
-- databases of their own); it gains no other right.
\getenv user MM_PG_USER
\getenv db MM_PG_DATABASE
\connect :db
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT format('GRANT pg_read_all_stats TO %I', :'user') \gexec
