#!/usr/bin/env bash
# Run the web server (waitress, python -m monitorsite.serve) and the django-q2 task
# cluster: one command, --with-cluster, whose main process loads the site once and
# forks the web processes and the cluster (manage.py qcluster's work) from it, so they
# share its memory (docs/web-server.md). Ctrl-C (or SIGTERM) stops both and waits for
# them; if either dies on its own, the other is stopped too, so a supervisor sees the
# failure instead of a half-running site.
#
# --demo also runs the paper-trading demo bot (python -m monitor_client.demo) as
# the bot "demo-bot"; its key is made once and kept next to the database in
# demo-bot.key. Extra demo options go in DEMO_ARGS (e.g. DEMO_ARGS="--tick 0.2 --losing").
# The demo is stopped first, so its last trades reach the site; the demo ending by
# itself does not stop the site.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# The database, its WAL, the logs and local backups are the owner's alone.
umask 077
demo_wanted=0
for arg in "$@"; do
    case "$arg" in
        --demo) demo_wanted=1 ;;
        *) echo "usage: scripts/serve.sh [--demo]" >&2; exit 2 ;;
    esac
done

# Every line on the console in the market's time zone: the site's processes log in
# it (Django sets TZ from TIME_ZONE, which is MARKET_TIMEZONE); the demo bot, which
# has no Django, is given the same TZ (see prepare_demo).

# Prints the site's URL for a local client, the demo bot's key file and the market's
# time zone, from the same settings the site uses (.env included).
demo_settings() {
    .venv/bin/python - <<'PY'
import os
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitorsite.settings")
import django

django.setup()
from django.conf import settings

from monitorsite.serve import server_options

bind = str(server_options()["listen"]).split()[0]
host, _, port = bind.rpartition(":")
if host in ("", "0.0.0.0", "::", "[::]") or host.startswith("unix"):
    host = "127.0.0.1"
print(f"http://{host}:{port}")
print(Path(settings.DATABASE_PATH).with_name("demo-bot.key"))
print(settings.MARKET_TIMEZONE)
PY
}

prepare_demo() {
    local settings key_file name key
    # Its Python runs with Ctrl-C ignored (inherited through exec): a Ctrl-C meanwhile waits the
    # second it takes, then stops the site (the trap), instead of a KeyboardInterrupt traceback.
    settings=$(trap '' INT; demo_settings) || return 1
    MONITOR_URL=$(sed -n 1p <<<"$settings")
    key_file=$(sed -n 2p <<<"$settings")
    TZ=$(sed -n 3p <<<"$settings")
    export TZ
    if [ ! -s "$key_file" ]; then
        # A bot named demo-bot whose key file was lost gets a fresh name: keys are shown once.
        for name in demo-bot "demo-bot-$(date +%Y%m%d%H%M%S)"; do
            if key=$(trap '' INT; .venv/bin/python manage.py create_bot "$name" 2>/dev/null | tail -n 1) && [ -n "$key" ]; then
                (umask 077 && printf '%s\n' "$key" >"$key_file")
                echo "created the bot $name for the demo; its key is in $key_file" >&2
                break
            fi
        done
    fi
    MONITOR_KEY=$(head -n 1 "$key_file" 2>/dev/null)
    if [ -z "$MONITOR_KEY" ]; then
        echo "could not create a key for the demo bot" >&2
        return 1
    fi
    export MONITOR_URL MONITOR_KEY
}

stop_demo() {
    # Before the site, so that the demo's final flush still reaches it.
    [ -n "$demo" ] || return 0
    kill -TERM "$demo" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 -- "-$demo" 2>/dev/null || return 0
        sleep 0.2
    done
    echo "demo bot still running after 20 s; killing (its spool keeps its trades)" >&2
    kill -KILL -- "-$demo" 2>/dev/null
}

stop_all() {
    stop_demo
    [ -n "$web" ] || return 0
    # The main process first, so it stops the web processes and the cluster gracefully
    # (the cluster's workers finish the task in hand, up to 25 s); a group whose main
    # process is already gone gets the signal directly.
    if kill -0 "$web" 2>/dev/null; then
        kill -TERM "$web" 2>/dev/null
    else
        kill -TERM -- "-$web" 2>/dev/null
    fi
    for _ in $(seq 150); do
        kill -0 -- "-$web" 2>/dev/null || return 0
        sleep 0.2
    done
    echo "the site still running after 30 s; killing" >&2
    kill -KILL -- "-$web" 2>/dev/null
}

on_signal() {
    trap - INT TERM
    stop_all
    wait 2>/dev/null
    echo "site and task cluster stopped" >&2
    exit 0
}
# Set before anything starts: a Ctrl-C while the demo is being prepared (its Python runs in the
# foreground for a few seconds) stops what has started instead of leaving bash killed by it.
web=
demo=
trap on_signal INT TERM


# In a process group of its own, so that stopping it reaches its web processes even
# when its main process was killed and they were left behind (the cluster leads a
# group of its own below it, and stops when that main process dies).
setsid .venv/bin/python -m monitorsite.serve --with-cluster &
web=$!
if [ "$demo_wanted" = 1 ]; then
    if prepare_demo; then
        # shellcheck disable=SC2086 # DEMO_ARGS is a list of options
        setsid .venv/bin/python -m monitor_client.demo ${DEMO_ARGS:-} &
        demo=$!
        echo "demo bot trading on $MONITOR_URL (paper money)" >&2
    else
        echo "the demo bot is not started; the site runs without it" >&2
    fi
fi

echo "site starting (admin at /admin/, API docs at /api/docs/); Ctrl-C stops it" >&2
wait "$web"
status=$?
echo "a process of the site exited with status $status; stopping the rest" >&2
trap - INT TERM
stop_all
wait 2>/dev/null
exit "$status"
