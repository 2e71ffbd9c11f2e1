#!/usr/bin/env bash
# Run gunicorn and the django-q2 cluster side by side. Ctrl-C (or SIGTERM) stops
# both and waits for them; if either dies on its own, the other is stopped too,
# so a supervisor sees the failure instead of a half-running site.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

.venv/bin/gunicorn --config gunicorn.conf.py monitorsite.wsgi &
web=$!
.venv/bin/python manage.py qcluster &
cluster=$!

stop() {
    trap - INT TERM
    kill -TERM "$web" "$cluster" 2>/dev/null
    wait "$web" "$cluster" 2>/dev/null
    echo "site and task cluster stopped" >&2
    exit 0
}
trap stop INT TERM

echo "site starting (admin at /admin/, API docs at /api/docs/); Ctrl-C stops it" >&2
wait -n "$web" "$cluster"
status=$?
echo "a process of the site exited with status $status; stopping the rest" >&2
kill -TERM "$web" "$cluster" 2>/dev/null
wait
exit "$status"
