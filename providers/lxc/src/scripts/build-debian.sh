# kloud: build (once) a Debian base container with debootstrap, from this computer's apt sources.
# Arguments: images dir, base name, suite, packages (comma-separated), rebuild (yes|no).
# Under the image's lock: when the current generation is ready and no rebuild is asked, only
# prints it. Otherwise builds generation N+1 in "$I/$B-gN", writes its identity
# (kloud-image.json) and then points "$I/$B.current" at it. Prints `IMAGE <generation>`.
set -e
I="$1"; B="$2"; SUITE="$3"; PKGS="$4"; REBUILD="$5"
step() { printf 'kloud-step: %s\n' "$1" >&2; }
mkdir -p "$I"
# Every systemd in a container takes inotify instances from root's one kernel-wide quota; at
# the default 128, about the 30th container's systemd hangs in `initializing`. Raise the
# limits (never lower them), as LXD's production settings do.
for kv in max_user_instances:8192 max_user_watches:1048576; do
  f=/proc/sys/fs/inotify/${kv%%:*}
  [ "$(cat "$f" 2>/dev/null || echo 0)" -ge "${kv##*:}" ] || echo "${kv##*:}" > "$f" 2>/dev/null || true
done
exec 8>>"$I/.lock-$B"
step lock
flock 8
cur=""
[ -f "$I/$B.current" ] && cur=$(cat "$I/$B.current")
if [ "$REBUILD" != yes ] && [ -n "$cur" ] && [ -f "$I/$cur/kloud-ready" ]; then
  echo "IMAGE $cur"; exit 0
fi
step sources
# The first Debian archive this computer's apt uses (deb822 .sources first, then one-line lists).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i !~ /^\[/ && $i !~ /\]$/) {print $i; exit}}' | grep -v security | head -n 1)
fi
[ -n "$mirror" ] || { echo "no Debian archive in /etc/apt/sources.list*" >&2; exit 1; }
n=1
for d in "$I/$B"-g*; do
  [ -d "$d" ] || continue
  k=${d##*-g}; case "$k" in *[!0-9]*|'') continue;; esac
  [ "$k" -ge "$n" ] && n=$((k + 1))
done
G="$B-g$n"; T="$I/$G"
rm -rf "$T"
trap 'rm -rf "$T"' EXIT
mkdir -p "$T"
started=$(date +%s)
step debootstrap
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$T/rootfs" "$mirror" > "$T/debootstrap.log" 2>&1 \
  || { tail -n 20 "$T/debootstrap.log" >&2; exit 1; }
step configure
R="$T/rootfs"
# apt inside uses what this computer's apt uses.
rm -f "$R/etc/apt/sources.list"
for s in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [ -f "$s" ] && cp "$s" "$R$s"
done
for c in /etc/apt/apt.conf.d/99*; do [ -f "$c" ] && cp "$c" "$R$c"; done
# Each container gets its own machine id and ssh host key at its first start: ed25519 only,
# since an RSA key costs a second or more of CPU per container.
: > "$R/etc/machine-id"
rm -f "$R"/etc/ssh/ssh_host_*
mkdir -p "$R/etc/systemd/system/ssh.service.d" "$R/etc/ssh/sshd_config.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/bin/sh -c "test -f /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \\"\\" -f /etc/ssh/ssh_host_ed25519_key"\nExecStartPre=/usr/sbin/sshd -t\n' \
  > "$R/etc/systemd/system/ssh.service.d/kloud-hostkeys.conf"
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n' \
  > "$R/etc/ssh/sshd_config.d/kloud.conf"
# Nothing in a container manages clocks, consoles, udev or periodic apt runs.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
         systemd-udevd.service systemd-udev-trigger.service getty@tty1.service getty@tty2.service \
         getty@tty3.service getty@tty4.service systemd-timesyncd.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# An image with the puppet agent (debian-12+puppet): kloud runs the agent once at first boot;
# its daemon never starts by itself.
if [ -e "$R/lib/systemd/system/puppet.service" ]; then
  ln -sf /dev/null "$R/etc/systemd/system/puppet.service"
fi
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n' > "$R/etc/systemd/journald.conf.d/kloud.conf"
: > "$R/etc/hostname"
# The resolvers are the network's (first boot writes them); debootstrap copied this computer's.
: > "$R/etc/resolv.conf"
cat > "$T/config" <<CONF
lxc.include = /usr/share/lxc/config/debian.common.conf
lxc.arch = linux64
lxc.rootfs.path = dir:$R
lxc.uts.name = $G
CONF
step identity
pk=$(chroot "$R" dpkg-query -W -f '${Package} ${Version}\n' | sort)
digest=$(printf '%s\n' "$pk" | sha256sum | cut -d' ' -f1)
count=$(printf '%s\n' "$pk" | wc -l)
took=$(( $(date +%s) - started ))
printf '{"image":"%s","generation":"%s","suite":"%s","mirror":"%s","built_at":"%s","build_seconds":%s,"packages":%s,"packages_sha256":"%s"}\n' \
  "$B" "$G" "$SUITE" "$mirror" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$took" "$count" "$digest" > "$T/kloud-image.json"
printf '%s\n' "$pk" > "$T/packages.txt"
touch "$T/kloud-ready"
trap - EXIT
printf '%s\n' "$G" > "$I/$B.current.new"
mv "$I/$B.current.new" "$I/$B.current"
echo "IMAGE $G"
