#!/bin/sh
# Grafana's read-only role on the site's PostgreSQL database, made once when the
# postgres service first creates its data folder (docker-entrypoint-initdb.d), with
# the password from GRAFANA_DB_PASSWORD. On a database of your own, run the SQL below
# with psql as the database's owner: psql -v reader_password=...
#
# The role may read what the dashboard shows and nothing else: the site grants it SELECT
# on trades_trade, trades_bot, trades_botsnapshot (the bots' reported state) and the
# market_utc_offsets view after every migrate (each start; monitorsite/grafana.py),
# never on the alert channels' settings (webhook URLs, tokens), the users, the sessions
# or the API keys. It writes nothing: no INSERT, UPDATE or DELETE, and its sessions are
# read-only. Made before the site's first migrate; on a
# database of your own, run the SQL and then the site's migrate (scripts/start.sh does).
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD in .env (see .env.example)}"
psql --set=ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=reader_password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"DBNAME" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
SQL
