#!/usr/bin/env bash
# The test suite's and the benchmarks' fixtures, on top of what
# scripts/setup.sh installs for any run (it runs first): the host tools the
# tests call (cpio, xz, zstd, tmux, mke2fs), Debian unstable's cloud kernel
# (sched_ext; virtio built in) in .cache/kernel-sid, scx_bpfland built into
# .cache/scx, virtiofsd built into .cache/virtiofsd, and cargo-fuzz where a
# nightly toolchain can run it.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

. scripts/apt.sh

need_apt=()
command -v xz >/dev/null || need_apt+=(xz-utils)
command -v zstd >/dev/null || need_apt+=(zstd)
command -v cpio >/dev/null || need_apt+=(cpio)
command -v tmux >/dev/null || need_apt+=(tmux)
# mke2fs, for the mkdisk tests (it lives in sbin, often off a user's PATH).
[ -x /usr/sbin/mke2fs ] || [ -x /sbin/mke2fs ] || need_apt+=(e2fsprogs)
apt_install "${need_apt[@]}"

# Debian unstable's cloud kernel (sched_ext; virtio built in, no module
# tree needed), for the VM tests of sched_ext and of a kernel booted without
# modules: fetched by `guestinit kernel fetch` (a private apt state; the
# machine's own apt sources and state stay untouched), and .cache/kernel-sid
# links to it.
sid=.cache/kernel-sid
if ! compgen -G "$sid/usr/lib/modules/*/vmlinuz" >/dev/null; then
    root=$(cargo run --release -q --bin guestinit -- kernel fetch --root debian:sid)
    rm -rf "$sid"
    ln -s "$root" "$sid"
fi

# The sched_ext VM tests run the real scx_bpfland, built once from crates.io
# into .cache/scx. Its BPF build calls `clang`, which Debian 12 ships as
# clang-19: a private symlink on PATH serves the build without touching /usr/bin.
setup_scx() {
    local root=.cache/scx
    [ -x "$root/bin/scx_bpfland" ] && return
    local pkgs=()
    for p in clang-19 libelf-dev zlib1g-dev pkg-config; do
        dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
    done
    apt_install "${pkgs[@]}"
    mkdir -p .cache/clang-bin
    ln -sf /usr/bin/clang-19 .cache/clang-bin/clang
    PATH="$PWD/.cache/clang-bin:$PATH" cargo install scx_bpfland --locked --root "$root"
}
setup_scx

# virtiofsd (the maintained Rust one, from crates.io) for `--share`: built
# into .cache/virtiofsd, never a prebuilt binary.
setup_virtiofsd() {
    local root=.cache/virtiofsd
    [ -x "$root/bin/virtiofsd" ] && return
    local pkgs=()
    for p in libseccomp-dev libcap-ng-dev pkg-config; do
        dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
    done
    apt_install "${pkgs[@]}"
    cargo install virtiofsd --locked --root "$root"
}
setup_virtiofsd

# cargo-nextest, for tests/vm_nextest.rs (guestinit as nextest's runner),
# from crates.io; --locked builds it with the dependency versions its
# release was tested with, as nextest's own install docs ask.
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi

# Fuzzing (scripts/fuzz.sh) runs cargo-fuzz on the nightly toolchain; where
# no nightly is installed the fuzz runs are skipped, so cargo-fuzz is too.
if cargo +nightly --version >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
echo "setup-tests: scx_bpfland $(.cache/scx/bin/scx_bpfland --version 2>/dev/null | head -1)," \
    "unstable kernel $(ls "$sid"/usr/lib/modules/*/vmlinuz | head -1)"
