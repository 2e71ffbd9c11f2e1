# Sourced by test.sh (and usable by hand): a throw-away PostgreSQL and redis-server on loopback
# ports for the suite's second run, installed from Debian's packages when missing.
#   start_services DIR   starts both with their data in DIR, exports DATABASE_URL and REDIS_URL
#   stop_services DIR    stops both (test.sh does it on exit, whatever happened)
# PostgreSQL runs as the postgres user (initdb refuses root), trust on loopback only: it
# listens on 127.0.0.1 and a socket folder inside DIR, and lives as long as the test run.

postgres_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && echo "$dir"
    done | sort -V | tail -n 1
}

install_services() {
    local missing=()
    [ -n "$(postgres_bin)" ] || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "No ${missing[*]} and no apt-get: the PostgreSQL run of the tests cannot start" >&2
        exit 1
    fi
    echo "Installing ${missing[*]} with apt" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_services() {
    local dir=$1 bin pg_port redis_port
    install_services
    bin=$(postgres_bin)
    mkdir -p "$dir/pg" "$dir/redis"
    chown postgres: "$dir/pg" 2>/dev/null || true
    chmod 700 "$dir/pg"
    # The folder above must be enterable by the postgres user.
    chmod 755 "$dir"
    pg_port=$(free_port)
    redis_port=$(free_port)
    run_as_postgres "$bin/initdb" -D "$dir/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/pg/initdb.log" 2>&1 \
        || { cat "$dir/pg/initdb.log" >&2; exit 1; }
    # Tuned for a throw-away test server: durability off (the data dies with the run).
    run_as_postgres "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
        -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $dir/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || { cat "$dir/pg/server.log" >&2; exit 1; }
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --save "" --appendonly no \
        --databases 512 \
        --daemonize yes --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log"
    for _ in $(seq 50); do
        redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/monitor"
    export REDIS_URL="redis://127.0.0.1:$redis_port/0"
    # pytest-django makes test_monitor from this; the site processes the tests start make their own.
    run_as_postgres "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres monitor
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port, redis-server on 127.0.0.1:$redis_port" >&2
}

stop_services() {
    local dir=$1 bin
    bin=$(postgres_bin)
    if [ -f "$dir/pg/data/postmaster.pid" ]; then
        run_as_postgres "$bin/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/redis/redis.pid" ]; then
        kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
    fi
}

run_as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        # runuser keeps the caller's folder out of it: the postgres user may not enter it.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}
