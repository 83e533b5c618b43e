#!/usr/bin/env bash
# The test suite's and the benchmarks' fixtures, on top of what
# scripts/setup.sh installs for any run (it runs first): the host tools the
# tests call (cpio, xz, zstd, tmux, mke2fs), the Debian 12 kernel's
# headers in .cache/kernel-headers, Debian unstable's cloud kernel
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
# readelf reads the cores --collect-cores brings back; cc builds the static
# program that crashes (tests/vm_collect.rs).
command -v readelf >/dev/null || need_apt+=(binutils)
command -v cc >/dev/null || need_apt+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need_apt+=(libc6-dev)
# The coverage test: a static C program built with clang-19's profile
# runtime, its profile merged and reported by llvm-19's tools.
command -v clang-19 >/dev/null || need_apt+=(clang-19)
command -v llvm-cov-19 >/dev/null || need_apt+=(llvm-19)
[ -f /usr/lib/llvm-19/lib/clang/19/lib/linux/libclang_rt.profile-x86_64.a ] || need_apt+=(libclang-rt-19-dev)
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

# The kernel-warning VM test builds a module against the exact release in
# .cache/kernel: its linux-headers package and what that needs (the
# -common headers, linux-kbuild) from this machine's own apt sources,
# downloaded into a cache folder and extracted into .cache/kernel-headers
# (no install: the machine's packages stay as they are).
setup_kernel_headers() {
    local root=.cache/kernel-headers release
    release=$(ls .cache/kernel/lib/modules | head -1)
    [ -n "$release" ] || { echo "setup-tests: no module tree in .cache/kernel" >&2; exit 1; }
    [ -f "$root/usr/src/linux-headers-$release/Makefile" ] && return
    apt_update
    local pkgs=("linux-headers-$release")
    mapfile -t -O 1 pkgs < <(apt-cache depends "linux-headers-$release" |
        awk '/Depends: linux-(headers|kbuild)-/ {print $2}')
    local dl=.cache/kernel-headers-debs
    rm -rf "$dl" && mkdir -p "$dl"
    chmod 777 "$dl"  # apt downloads as the _apt user, which must write here
    (cd "$dl" && apt-get download -qq "${pkgs[@]}")
    mkdir -p "$root"
    for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    rm -rf "$dl"
}
setup_kernel_headers

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
