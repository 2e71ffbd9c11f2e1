#!/usr/bin/env bash
# Install what the tests need and run them: lint, migrations check, pytest on SQLite, then on PostgreSQL + Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
install_venv requirements-dev.txt
# --- Browser tests (tests/test_admin_browser.py): headless Chromium + chromedriver from Debian.
# Installed only when missing.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if command -v apt-get >/dev/null; then
        echo "Installing chromium and chromium-driver with apt" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "No /usr/bin/chromium or /usr/bin/chromedriver and no apt-get: the browser tests will fail" >&2
    fi
fi
# --- end of browser tests block
# --- Compose file check (tests/test_compose.py): Debian's docker-compose validates
# docker-compose.yml with "config" and needs no Docker engine. Installed only when missing.
if ! command -v docker-compose >/dev/null; then
    if command -v apt-get >/dev/null; then
        echo "Installing docker-compose with apt" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    else
        echo "No docker-compose and no apt-get: the compose file tests will fail" >&2
    fi
fi
# --- end of compose file check block
# --- Prometheus (tests/test_metrics.py): Debian's prometheus scrapes the site under test, and its
# promtool checks docs/prometheus/alerts.yml. Installed only when missing.
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
    if command -v apt-get >/dev/null; then
        echo "Installing prometheus with apt" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    else
        echo "No /usr/bin/prometheus or /usr/bin/promtool and no apt-get: tests/test_metrics.py will fail" >&2
    fi
fi
# --- end of prometheus block
# --- Storage emulators (tests/test_storage_providers.py): Azurite from npm, pinned by
# tests/emulators/package-lock.json. Installed only when missing.
if [ ! -x tests/emulators/node_modules/.bin/azurite-blob ]; then
    if ! command -v npm >/dev/null && command -v apt-get >/dev/null; then
        echo "Installing nodejs and npm with apt" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    if command -v npm >/dev/null; then
        echo "Installing Azurite with npm ci" >&2
        npm ci --prefix tests/emulators --no-audit --no-fund --loglevel=error >/dev/null
    else
        echo "No npm and no apt-get: the Azure storage tests will fail" >&2
    fi
fi
# --- end of storage emulators block
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The start-up step start.sh runs too: data/ and the secret key that manage.py needs.
.venv/bin/python manage.py prepare_site
.venv/bin/python manage.py makemigrations --check --dry-run
# The suite twice: on the embedded defaults (SQLite, ORM broker), then on a throw-away PostgreSQL
# with the Redis broker (scripts/_services.sh), which are stopped however the run ends.
# Two workers per core (pytest-xdist): about half of a worker's time is spent waiting on sockets,
# clocks and other processes (measured: 4 workers took 3m51s of a pass on 2 cores, 2 workers 5m41s);
# at most 8 (tests/harness.py gives each worker its own ports and Redis databases). Tests are handed
# out one by one in collection order ("load"): each worker then runs pytest-django's database tests
# before the ones that empty the database, as one process would; a distribution by file broke that.
# The 25 slowest tests of each pass are listed at its end.
workers=$(( $(nproc) * 2 > 8 ? 8 : $(nproc) * 2 ))
pytest_run() {
    .venv/bin/python -m pytest -n "${TEST_WORKERS:-$workers}" --dist load --durations=25 "$@"
}
echo "=== The suite on SQLite and the ORM broker" >&2
pytest_run "$@"
source scripts/_services.sh
services=$(mktemp -d)
trap 'stop_services "$services"; rm -rf "$services"' EXIT
start_services "$services"
echo "=== The suite on PostgreSQL and the Redis broker" >&2
pytest_run "$@"
