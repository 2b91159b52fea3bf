# shellcheck shell=bash
# Sourced by scripts/test.sh: what the LXC driver's tests (and the container benchmark) need.
#
# Installs LXC, the host busybox the offline `busybox` template copies into containers, ping,
# iproute2 and flock (util-linux), and for `debian-12` hosts debootstrap and the OpenSSH client
# (tests/real_hosts.rs logs in to them); checks overlayfs; the tests create their own bridges and
# containers under /var/lib/kloud/test-lxc and remove them. The debian-12 image is built once per
# computer, by the first test that needs it, in /var/lib/kloud/images. Safe to source twice.
# Exports: KLOUD_TEST_LXC=1 when LXC is usable.

kloud_setup_lxc() {
    local need=()
    command -v lxc-create >/dev/null 2>&1 || need+=(lxc)
    command -v busybox >/dev/null 2>&1 || need+=(busybox)
    command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
    command -v ip >/dev/null 2>&1 || need+=(iproute2)
    command -v flock >/dev/null 2>&1 || need+=(util-linux)
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
    command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
    if [ ${#need[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || return 1
    fi
    [ -f /usr/share/lxc/templates/lxc-busybox ] || { echo "lxc.sh: busybox template missing" >&2; return 1; }
    # LXC needs a cgroup hierarchy; a bare container without one cannot run LXC at all.
    [ -d /sys/fs/cgroup ] && [ -n "$(ls -A /sys/fs/cgroup 2>/dev/null)" ] || { echo "lxc.sh: no cgroup filesystem" >&2; return 1; }
    # The driver's default backing store is an overlayfs snapshot of the image's base.
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || echo "lxc.sh: no overlayfs; use KLOUD_LXC_BACKING=dir" >&2
    mkdir -p /var/lib/kloud/lxc /var/lib/kloud/test-lxc /var/lib/kloud/images || return 1
    export KLOUD_TEST_LXC=1
}

kloud_setup_lxc || echo "scripts/setup/lxc.sh: setup failed; LXC tests will skip (or fail under CI=true)" >&2
