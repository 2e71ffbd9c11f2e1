#!/usr/bin/env bash
# Run the web server (waitress, python -m monitorsite.serve) and the django-q2
# cluster side by side. Ctrl-C (or SIGTERM) stops
# both and waits for them; if either dies on its own, the other is stopped too,
# so a supervisor sees the failure instead of a half-running site.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# The database, its WAL, the logs and local backups are the owner's alone.
umask 077

# Each in a process group of its own, so that stopping one reaches its workers
# even when its main process was killed and they were left behind.
setsid .venv/bin/python -m monitorsite.serve &
web=$!
setsid .venv/bin/python manage.py qcluster &
cluster=$!

stop_all() {
    # The main processes first, so each stops its own workers gracefully; a
    # group whose main process is already gone gets the signal directly.
    local pid
    for pid in "$web" "$cluster"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
        else
            kill -TERM -- "-$pid" 2>/dev/null
        fi
    done
    for _ in $(seq 150); do
        kill -0 -- "-$web" 2>/dev/null || kill -0 -- "-$cluster" 2>/dev/null || return 0
        sleep 0.2
    done
    echo "still running after 30 s; killing" >&2
    kill -KILL -- "-$web" "-$cluster" 2>/dev/null
}

on_signal() {
    trap - INT TERM
    stop_all
    wait 2>/dev/null
    echo "site and task cluster stopped" >&2
    exit 0
}
trap on_signal INT TERM

echo "site starting (admin at /admin/, API docs at /api/docs/); Ctrl-C stops it" >&2
wait -n "$web" "$cluster"
status=$?
echo "a process of the site exited with status $status; stopping the rest" >&2
trap - INT TERM
stop_all
wait 2>/dev/null
exit "$status"
