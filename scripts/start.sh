#!/usr/bin/env bash
# Install everything, prepare the database and run the site with its task cluster
# on http://127.0.0.1:8000 (override with BIND=host:port). Ctrl-C stops both.
# With --demo, the paper-trading demo bot runs beside them (see scripts/serve.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
    case "$arg" in
        --demo) ;;
        *) echo "usage: scripts/start.sh [--demo]" >&2; exit 2 ;;
    esac
done
source scripts/_venv.sh
install_venv requirements.txt
# Everything made from here on (data/, the database, the secret key, logs) is the owner's alone.
umask 077
.venv/bin/python manage.py prepare_site
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py setup_schedules
.venv/bin/python manage.py ensure_admin
exec scripts/serve.sh "$@"
