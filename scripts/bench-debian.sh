#!/usr/bin/env bash
# The debian-12 part of scripts/bench-apply.sh (run through it): ARGS = kloud binary, runs,
# parallelism. See bench-apply.sh for what is measured.
set -euo pipefail
kloud=$1; runs=${2:-3}; par=${3:-10}
work=$(mktemp -d)
root=/var/lib/kloud/bench-debian-$$
cache=/var/lib/kloud/bench-debian-images-$$
export KLOUD_LXC_ROOT=$root KLOUD_IMAGE_CACHE=$cache
trap '(cd "$work" && "$kloud" destroy . --auto-approve >/dev/null 2>&1); rm -rf "$work" "$root" "$cache"; ip link del kl-bdeb 2>/dev/null || true' EXIT
ssh-keygen -q -t ed25519 -N '' -C bench@kloud -f "$work/key"
cat > "$work/main.hcl" <<HCL
kloud {
  domain = "bdeb.kloud.test"
}

machine_class "box" {
  cpu    = 32
  memory = "32GiB"
  disk   = "200GiB"
}

machines "m" {
  class   = "box"
  count   = 3
  name    = "m{{ index }}"
  connect = "local"
}

network "bdeb" {
  cidr    = "10.253.100.0/24"
  gateway = "10.253.100.1"
  dns     = ["10.253.100.1"]
}

host_class "web" {
  count   = 60
  cpu     = 1
  memory  = "256MiB"
  disk    = "2GiB"
  image   = "debian-12"
  network = "bdeb"
  login {
    user     = "ops"
    ssh_keys = ["$(cat "$work/key.pub")"]
    sudo     = true
  }
  first_boot = ["echo booted > /root/booted"]
  placement {
    strategy = "spread"
  }
}
HCL
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

echo "== first build of debian-12 (debootstrap into an empty image cache $cache)"
t0=$(now)
"$kloud" images rebuild debian-12
t1=$(now)
printf 'image build: %.1f s wall\n' "$(echo "$t1 - $t0" | bc)"
"$kloud" images

ssh_ok() {
  ssh -i "$work/key" -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o ConnectTimeout=2 -o LogLevel=ERROR "ops@$1" 'test -f /var/lib/kloud/first-boot/sshd.done && sudo -n true' 2>/dev/null
}
totals=(); applies=()
for r in $(seq 1 "$runs"); do
  t0=$(now)
  (cd "$work" && "$kloud" apply . --auto-approve --parallelism "$par" >/dev/null)
  t1=$(now)
  # Ten logins at a time, each host retried until it answers (one after the other, the ssh
  # handshakes alone would take longer than the containers do).
  export -f ssh_ok; export work
  seq 2 61 | xargs -P 10 -I{} bash -c 'until ssh_ok 10.253.100.{}; do sleep 0.1; done'

  t2=$(now)
  applies+=("$(echo "$t1 - $t0" | bc)"); totals+=("$(echo "$t2 - $t0" | bc)")
  printf 'run %d: apply %.1f s, all 60 answering ssh with first boot done at %.1f s\n' "$r" "${applies[-1]}" "${totals[-1]}"
  if [ "$r" = 1 ]; then
    sleep 10
    # Memory of each idle container: its cgroup's usage (with page cache) and its rss.
    usage=(); rss=()
    for c in /sys/fs/cgroup/memory/lxc.payload.web-*.bdeb.kloud.test; do
      [ -d "$c" ] || continue
      usage+=("$(( $(cat "$c/memory.usage_in_bytes") / 1024 ))")
      rss+=("$(( $(awk '$1=="total_rss"{print $2}' "$c/memory.stat") / 1024 ))")
    done
    printf 'idle Debian container (n=%d): median memory.usage %s KiB (with page cache), median rss %s KiB\n' \
      "${#usage[@]}" "$(printf '%s\n' "${usage[@]}" | median)" "$(printf '%s\n' "${rss[@]}" | median)"
  fi
  (cd "$work" && "$kloud" destroy . --auto-approve >/dev/null)
done
printf 'median of %d runs (parallelism %d): apply %s s, all 60 answering ssh with first boot done %s s\n' \
  "$runs" "$par" "$(printf '%s\n' "${applies[@]}" | median)" "$(printf '%s\n' "${totals[@]}" | median)"
