#!/usr/bin/env bash
# The main job on a fresh machine: install what a VM needs (scripts/setup.sh:
# QEMU, busybox, one kernel), build the two binaries it runs, and run a demo
# payload in a VM, its output streamed live, the exit code passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin guestinit --bin init
# The script is one argument to sh -c; any byte but NUL may be in it.
exec target/release/guestinit run --timeline -- /bin/busybox sh -c \
    'echo "hello from $(uname -sr) on $(nproc) CPU(s)"; echo "this line goes to stderr" >&2; grep MemTotal /proc/meminfo; exit 3'
