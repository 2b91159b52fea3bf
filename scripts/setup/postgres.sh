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
#
# TLS: the cluster gets a server certificate (for 127.0.0.1 and localhost) signed by a test CA
# made here with openssl, and `ssl = on`. Exports KLOUD_TEST_PG_TLS_URL (the same database,
# `sslmode=verify-full&sslrootcert=CA`), KLOUD_TEST_PG_CA (that CA) and KLOUD_TEST_PG_OTHER_CA
# (a CA that signed nothing, for the wrong-CA test).

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
            # Free when nothing answers a connect (works without iproute2's `ss`).
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then port=$try; break; fi
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
    kloud_setup_postgres_tls "$dir" "$bin" "$port" || echo "postgres.sh: TLS setup failed; TLS tests will skip (or fail under CI=true)" >&2
}

# A test CA, a server certificate it signs, `ssl = on` (a reload is enough).
kloud_setup_postgres_tls() {
    local dir=$1 bin=$2 port=$3 tls=$1/tls
    command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null || return 1
    mkdir -p "$tls" && chmod 755 "$tls" || return 1
    if [ ! -f "$tls/server.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kloud test CA" \
            -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || return 1
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kloud other CA" \
            -keyout "$tls/other-ca.key" -out "$tls/other-ca.pem" 2>/dev/null || return 1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null || return 1
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$tls/server.ext"
        openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
            -CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null || return 1
    fi
    install -o postgres -g postgres -m 600 "$tls/server.key" "$dir/data/server.key" || return 1
    install -o postgres -g postgres -m 644 "$tls/server.pem" "$dir/data/server.crt" || return 1
    if [ "$(runuser -u postgres -- "$bin/psql" -h "$dir" -p "$port" -U postgres -Atc 'SHOW ssl' 2>/dev/null)" != on ]; then
        runuser -u postgres -- "$bin/psql" -h "$dir" -p "$port" -U postgres -qAt \
            -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null || return 1
        sleep 0.5
    fi
    export KLOUD_TEST_PG_CA="$tls/ca.pem"
    export KLOUD_TEST_PG_OTHER_CA="$tls/other-ca.pem"
    export KLOUD_TEST_PG_TLS_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=verify-full&sslrootcert=$tls/ca.pem"
}

kloud_setup_postgres
