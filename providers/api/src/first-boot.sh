# kloud first boot, run inside the container as root (design §9). kloud puts the variables
# and the list of steps around this body. A step that finished leaves a marker in $D and is
# never run again; a step that failed or was interrupted leaves none, so the next call runs it.
# Prints `kloud-fb: run|skip NAME` per step, then `kloud-fb: done`, or
# `kloud-fb: fail EXIT NAME` and the last lines of the step's output.
D=/var/lib/kloud/first-boot
mkdir -p "$D" || exit 1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8

# systemd is still starting when lxc-start returns: wait (at most a minute) for it.
i=0
while [ $i -lt 600 ]; do
  case "$(systemctl is-system-running 2>/dev/null)" in
    running|degraded) break ;;
  esac
  i=$((i + 1)); sleep 0.1
done

run_step() {
  id="$1"; name="$2"; shift 2
  if [ -f "$D/$id.done" ]; then echo "kloud-fb: skip $name"; return 0; fi
  echo "kloud-fb: run $name"
  ( "$@" ) > "$D/$id.log" 2>&1 < /dev/null
  s=$?
  if [ $s -ne 0 ]; then
    echo "kloud-fb: fail $s $name"
    tail -n 20 "$D/$id.log"
    exit 0
  fi
  touch "$D/$id.done"
}

step_hostname() {
  set -e
  printf '%s\n' "$FQDN" > /etc/hostname
  hostname "$FQDN" 2>/dev/null || printf '%s' "$FQDN" > /proc/sys/kernel/hostname
  {
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    printf '%s\t%s %s\n' "$ADDR" "$FQDN" "${FQDN%%.*}"
  } > /etc/hosts.kloud
  mv /etc/hosts.kloud /etc/hosts
  [ "$(hostname -f)" = "$FQDN" ]
}

step_resolver() {
  set -e
  rm -f /etc/resolv.conf.kloud
  for r in $DNS; do printf 'nameserver %s\n' "$r" >> /etc/resolv.conf.kloud; done
  mv /etc/resolv.conf.kloud /etc/resolv.conf
}

step_login() {
  set -e
  id "$LOGIN_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$LOGIN_USER"
  usermod --lock "$LOGIN_USER"
  home=$(getent passwd "$LOGIN_USER" | cut -d: -f6)
  install -d -m 700 -o "$LOGIN_USER" -g "$(id -gn "$LOGIN_USER")" "$home/.ssh"
  printf '%s\n' "$LOGIN_KEYS" > "$home/.ssh/authorized_keys.kloud"
  chmod 600 "$home/.ssh/authorized_keys.kloud"
  chown "$LOGIN_USER:" "$home/.ssh/authorized_keys.kloud"
  mv "$home/.ssh/authorized_keys.kloud" "$home/.ssh/authorized_keys"
  f="/etc/sudoers.d/kloud-$LOGIN_USER"
  if [ "$LOGIN_SUDO" = yes ]; then
    printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$LOGIN_USER" > "$f.kloud"
    chmod 440 "$f.kloud"
    visudo -cqf "$f.kloud"
    mv "$f.kloud" "$f"
  else
    rm -f "$f"
  fi
}

step_sshd() {
  set -e
  # One host key, ed25519 (RSA costs a second or more of CPU); the image's sshd uses it.
  [ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
  systemctl enable ssh.service >/dev/null 2>&1 || true
  systemctl is-active --quiet ssh.service || systemctl restart ssh.service
  i=0
  until ss -Hltn 'sport = :22' | grep -q .; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "sshd does not listen on port 22"; systemctl status ssh.service --no-pager; exit 1; }
    sleep 0.1
  done
}

step_command() {
  KLOUD_FQDN="$FQDN" KLOUD_CLASS="$CLASS" KLOUD_ROLES="$ROLES" exec sh -c "$1"
}

# One agent run against $PUPPET (HOST[:PORT], port 8140 by default), as the host's FQDN. With
# --detailed-exitcodes the agent exits 0 (nothing to change) or 2 (changes applied) on success,
# 4 or 6 when resources failed, 1 when it could not run (no server, no certificate): only 0 and
# 2 finish the step. --waitforcert 0: one try for the certificate (the server signs at once or
# the step fails now rather than hang); no cached catalog stands in for one the server refused.
step_puppet() {
  if ! command -v puppet >/dev/null 2>&1; then
    echo "puppet is not installed in the container: make the host from an image with the agent (debian-12+puppet)"
    exit 127
  fi
  host=${PUPPET%:*}; port=8140
  [ "$host" != "$PUPPET" ] && port=${PUPPET##*:}
  puppet agent --onetime --no-daemonize --verbose --no-splay --no-usecacheonfailure \
    --detailed-exitcodes --waitforcert 0 --color false \
    --server "$host" --serverport "$port" --certname "$FQDN"
  s=$?
  case $s in
    0|2) exit 0 ;;
    *) echo "puppet agent exited $s"; exit "$s" ;;
  esac
}
