# shellcheck shell=bash
# Sourced by scripts/test.sh: a real PostgreSQL server on loopback for the HostDB store tests.
#
# Installs the Debian `postgresql` package if needed, initialises (once) a private cluster in
# $KLOUD_TEST_PG_DIR owned by the `postgres` user, and starts it on 127.0.0.1 on a free port
# with trust authentication (loopback only). Safe to source twice: a running server from an
# earlier run is reused. Each test creates its own schema, so tests may run in parallel.
#
# Exports: KLOUD_TEST_PG_URL (superuser URL of the `postgres` database) and KLOUD_TEST_PG_BIN
#          (the server's bin directory, for tests that start and restart a private cluster).

kloud_setup_postgres() {
    local dir=${KLOUD_TEST_PG_DIR:-/var/tmp/kloud-test-pg}
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
        bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    fi
    [ -x "$bin/initdb" ] || { echo "postgres.sh: initdb not found" >&2; return 1; }

    mkdir -p "$dir" || return 1
    chown postgres:postgres "$dir" || return 1
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null || return 1
    fi

    local port=""
    if [ -f "$dir/port" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        port=$(cat "$dir/port")
    else
        local try
        for _ in $(seq 1 50); do
            try=$(( 20000 + RANDOM % 20000 ))
            if ! ss -Htln "sport = :$try" | grep -q .; then port=$try; break; fi
        done
        [ -n "$port" ] || { echo "postgres.sh: no free port found" >&2; return 1; }
        # Each parallel test opens a few connections; fsync off because test data is disposable.
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off" \
            start >/dev/null || { tail -n 20 "$dir/server.log" >&2; return 1; }
        echo "$port" > "$dir/port"
    fi
    export KLOUD_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    export KLOUD_TEST_PG_BIN="$bin"
}

kloud_setup_postgres
