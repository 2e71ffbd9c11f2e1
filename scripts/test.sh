#!/usr/bin/env bash
# Install what the tests need and run them: lint, migrations check, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
install_venv requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python manage.py makemigrations --check --dry-run
.venv/bin/python -m pytest "$@"
