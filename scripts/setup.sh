#!/usr/bin/env bash
# Installs what `guestinit run` and the demo need on a fresh Debian machine,
# and nothing more: QEMU (TCG is enough), a static busybox for payloads, and
# the machine's Debian cloud kernel with its modules, extracted into
# .cache/kernel. The tests' own fixtures come with scripts/setup-tests.sh.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/kernel

. scripts/apt.sh

need_apt=()
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
apt_install "${need_apt[@]}"

if ! ls "$cache"/boot/vmlinuz-* >/dev/null 2>&1; then
    apt_update
    # The meta package depends on exactly one versioned kernel image package.
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || { echo "setup: cannot resolve the kernel behind linux-image-cloud-amd64" >&2; exit 1; }
    tmp=$(mktemp -d)
    chmod 777 "$tmp"  # apt downloads as the _apt user, which must write here
    (cd "$tmp" && apt-get download -qq "$pkg")
    mkdir -p "$cache"
    dpkg-deb -x "$tmp"/*.deb "$cache"
    rm -rf "$tmp"
fi
echo "setup: qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), kernel $(ls "$cache"/boot/vmlinuz-* | head -1)"
