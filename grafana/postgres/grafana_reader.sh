#!/bin/sh
# Grafana's read-only role on the site's PostgreSQL database, made once when the
# postgres service first creates its data folder (docker-entrypoint-initdb.d), with
# the password from GRAFANA_DB_PASSWORD. On a database of your own, run the SQL below
# with psql as the database's owner: psql -v reader_password=... -v owner=monitor
#
# The role may read every table the site's migrations make (default privileges of
# the owner, so tables added later are readable too, and the dashboard's view that
# each migrate recreates), and write nothing: no INSERT, UPDATE or DELETE, and its
# sessions are read-only. Passwords and API keys are stored hashed.
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD in .env (see .env.example)}"
psql --set=ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=reader_password="$GRAFANA_DB_PASSWORD" --set=owner="$POSTGRES_USER" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"DBNAME" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
