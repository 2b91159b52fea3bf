# shellcheck shell=bash
# Sourced by scripts/test.sh: a real OpenSSH server on loopback for the compute drivers' tests.
#
# Starts (once) an sshd on 127.0.0.1 on a free port with a generated host key, authorising a
# generated client key for root. Sessions see a PATH that starts with $KLOUD_TEST_SSH_BIN, where
# the OpenVZ stand-in tools (providers/openvz/tests/standin/) are installed, and accept
# KLOUD_VZ_* variables from the client (the stand-in keeps its state where KLOUD_VZ_STATE says).
# Safe to source twice: a running server from an earlier run is reused.
#
# Exports: KLOUD_TEST_SSH_PORT, KLOUD_TEST_SSH_KEY (client private key),
#          KLOUD_TEST_SSH_KNOWN_HOSTS, KLOUD_TEST_SSH_BIN.

kloud_setup_sshd() {
    local dir=${KLOUD_TEST_SSHD_DIR:-/var/tmp/kloud-test-sshd}
    local here repo
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || return 1
    repo=$(cd "$here/../.." && pwd) || return 1

    if ! command -v /usr/sbin/sshd >/dev/null 2>&1 || ! command -v ssh >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null || return 1
    fi
    mkdir -p "$dir/bin" /run/sshd || return 1
    chmod 700 "$dir"

    [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C kloud-test-host -f "$dir/host_ed25519" || return 1
    [ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C kloud-test-client -f "$dir/client_ed25519" || return 1
    cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"

    # The OpenVZ stand-in tools, refreshed on every source so edits take effect.
    local t
    for t in vzctl vzlist; do
        if [ -f "$repo/providers/openvz/tests/standin/$t" ]; then
            install -m 755 "$repo/providers/openvz/tests/standin/$t" "$dir/bin/$t" || return 1
        fi
    done

    local port=""
    if [ -f "$dir/sshd.pid" ] && [ -f "$dir/port" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
        port=$(cat "$dir/port")
    else
        local try
        for _ in $(seq 1 50); do
            try=$(( 20000 + RANDOM % 20000 ))
            if [ -z "$(ss -Htln "sport = :$try")" ]; then port=$try; break; fi
        done
        [ -n "$port" ] || { echo "sshd.sh: no free port found" >&2; return 1; }
        cat > "$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
AcceptEnv KLOUD_VZ_*
SetEnv PATH=$dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
Subsystem sftp internal-sftp
CONF
        /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || { echo "sshd.sh: sshd failed, see $dir/sshd.log" >&2; return 1; }
        echo "$port" > "$dir/port"
        local i
        for i in $(seq 1 50); do
            [ -n "$(ss -Htln "sport = :$port")" ] && break
            sleep 0.1
        done
    fi
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" > "$dir/known_hosts"

    export KLOUD_TEST_SSH_PORT=$port
    export KLOUD_TEST_SSH_KEY=$dir/client_ed25519
    export KLOUD_TEST_SSH_KNOWN_HOSTS=$dir/known_hosts
    export KLOUD_TEST_SSH_BIN=$dir/bin
}

kloud_setup_sshd || echo "scripts/setup/sshd.sh: setup failed; ssh tests will skip (or fail under CI=true)" >&2
