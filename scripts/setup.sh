#!/usr/bin/env bash
# Installs what `guestinit run` and the demo need on a fresh Debian machine,
# and nothing more: QEMU (TCG is enough), a static busybox for payloads, and
# the machine's Debian cloud kernel with its modules (fetched by guestinit
# itself; .cache/kernel links to it). The tests' own fixtures come with scripts/setup-tests.sh.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/kernel

. scripts/apt.sh

need_apt=()
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
apt_install "${need_apt[@]}"

# The kernel by name, through the tool itself: `guestinit kernel fetch`
# unpacks the machine's own suite's cloud kernel (a private apt state; the
# archive is the one this machine's apt sources name) into the user's
# kernel cache, and .cache/kernel links to it.
if ! ls "$cache"/boot/vmlinuz-* >/dev/null 2>&1; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || { echo "setup: /etc/os-release names no VERSION_CODENAME: not a Debian machine?" >&2; exit 1; }
    root=$(cargo run --release -q --bin guestinit -- kernel fetch --root "debian:$codename")
    mkdir -p .cache
    rm -rf "$cache"
    ln -s "$root" "$cache"
fi
echo "setup: qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), kernel $(ls "$cache"/boot/vmlinuz-* | head -1)"
