# shellcheck shell=bash
# Sourced by scripts/test.sh: a private OpenLDAP server (Debian `slapd`) on loopback for the
# identity tests (design §10): people who sign in, groups that give roles, SSH keys.
#
# Installs `slapd`, `ldap-utils` and `openssl` if needed; makes (once) a test CA and a server
# certificate for 127.0.0.1/localhost, a slapd.conf with the openssh-lpk schema (written here:
# Debian does not ship it) and a test directory; starts slapd on two free ports, ldap:// (with
# StartTLS) and ldaps://. Safe to source twice: a running server from an earlier run is reused.
#
# The directory (base dc=example,dc=org; every password is NAME-secret):
#   alice  groups ops, dns-editors   two sshPublicKey values
#   bob    group admins              one sshPublicKey value
#   carol  no group                  no key
# Exports: KLOUD_TEST_LDAP_URL (ldap://), KLOUD_TEST_LDAPS_URL (ldaps://), KLOUD_TEST_LDAP_CA
#          (the test CA's PEM), KLOUD_TEST_LDAP_BASE (the suffix).

kloud_setup_slapd() {
    local dir=${KLOUD_TEST_LDAP_DIR:-/var/tmp/kloud-test-slapd}
    local base="dc=example,dc=org"
    local need=()
    [ -x /usr/sbin/slapd ] || need+=(slapd)
    command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    if [ ${#need[@]} -gt 0 ]; then
        # slapd's postinst would configure a system-wide server; we only want the binaries.
        echo "slapd slapd/no_configuration boolean true" | debconf-set-selections 2>/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || return 1
    fi
    mkdir -p "$dir/db" || return 1
    chmod 700 "$dir"

    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && [ -f "$dir/ports" ]; then
        kloud_slapd_export "$dir" "$base"
        return 0
    fi

    kloud_slapd_certs "$dir" || return 1
    kloud_slapd_conf "$dir" "$base" || return 1
    if [ ! -f "$dir/db/loaded" ]; then
        rm -f "$dir"/db/*.mdb
        kloud_slapd_ldif "$base" > "$dir/directory.ldif" || return 1
        /usr/sbin/slapadd -q -f "$dir/slapd.conf" -l "$dir/directory.ldif" >"$dir/slapadd.log" 2>&1 \
            || { cat "$dir/slapadd.log" >&2; return 1; }
        touch "$dir/db/loaded"
    fi

    local ports=() try
    for _ in $(seq 1 100); do
        try=$(( 20000 + RANDOM % 20000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then ports+=("$try"); fi
        [ ${#ports[@]} -ge 2 ] && break
    done
    [ ${#ports[@]} -ge 2 ] || { echo "slapd.sh: no free ports found" >&2; return 1; }
    /usr/sbin/slapd -f "$dir/slapd.conf" \
        -h "ldap://127.0.0.1:${ports[0]}/ ldaps://127.0.0.1:${ports[1]}/" >"$dir/slapd.log" 2>&1 \
        || { cat "$dir/slapd.log" >&2; return 1; }
    echo "${ports[0]} ${ports[1]}" > "$dir/ports"
    # slapd daemonises and writes its pid file; wait until it answers.
    for _ in $(seq 1 50); do
        if ldapsearch -x -H "ldap://127.0.0.1:${ports[0]}" -b "$base" -s base dn >/dev/null 2>&1; then
            kloud_slapd_export "$dir" "$base"
            return 0
        fi
        sleep 0.1
    done
    echo "slapd.sh: slapd did not answer on port ${ports[0]}" >&2
    return 1
}

kloud_slapd_export() {
    local dir=$1 base=$2 ports
    read -r -a ports < "$dir/ports"
    export KLOUD_TEST_LDAP_URL="ldap://127.0.0.1:${ports[0]}"
    export KLOUD_TEST_LDAPS_URL="ldaps://127.0.0.1:${ports[1]}"
    export KLOUD_TEST_LDAP_CA="$dir/ca.pem"
    export KLOUD_TEST_LDAP_BASE="$base"
}

# A test CA and a server certificate signed by it, valid for 127.0.0.1 and localhost.
kloud_slapd_certs() {
    local dir=$1
    [ -f "$dir/server.pem" ] && [ -f "$dir/ca.pem" ] && return 0
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kloud test LDAP CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        >/dev/null 2>&1 || return 1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1 || return 1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 3650 -extfile "$dir/server.ext" -out "$dir/server.pem" \
        >/dev/null 2>&1 || return 1
    chmod 600 "$dir/server.key" "$dir/ca.key"
}

kloud_slapd_conf() {
    local dir=$1 base=$2
    cat > "$dir/openssh-lpk.schema" <<'EOF'
# The openssh-lpk schema: SSH public keys of a person (objectClass ldapPublicKey).
attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
    DESC 'OpenSSH public key'
    EQUALITY octetStringMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
    DESC 'OpenSSH LPK objectclass'
    MAY ( sshPublicKey $ uid ) )
EOF
    cat > "$dir/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include $dir/openssh-lpk.schema
pidfile $dir/pid
argsfile $dir/args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
database mdb
maxsize 104857600
suffix "$base"
rootdn "cn=admin,$base"
rootpw admin-secret
directory $dir/db
index objectClass eq
index member eq
index uid eq
EOF
}

kloud_slapd_ldif() {
    local base=$1 p
    cat <<EOF
dn: $base
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=People,$base
objectClass: organizationalUnit
ou: People

dn: ou=Groups,$base
objectClass: organizationalUnit
ou: Groups

EOF
    for p in alice bob carol; do
        cat <<EOF
dn: uid=$p,ou=People,$base
objectClass: inetOrgPerson
objectClass: ldapPublicKey
uid: $p
cn: $p
sn: $p
userPassword: $(/usr/sbin/slappasswd -s "$p-secret")
EOF
        case $p in
            alice)
                echo "sshPublicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKloudTestAliceKeyOne000000000000000000000 alice@one"
                echo "sshPublicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKloudTestAliceKeyTwo000000000000000000000 alice@two" ;;
            bob)
                echo "sshPublicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKloudTestBobKey00000000000000000000000000 bob@laptop" ;;
        esac
        echo
    done
    cat <<EOF
dn: cn=ops,ou=Groups,$base
objectClass: groupOfNames
cn: ops
member: uid=alice,ou=People,$base

dn: cn=admins,ou=Groups,$base
objectClass: groupOfNames
cn: admins
member: uid=bob,ou=People,$base

dn: cn=dns-editors,ou=Groups,$base
objectClass: groupOfNames
cn: dns-editors
member: uid=alice,ou=People,$base

EOF
}

kloud_setup_slapd
