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

# The Debian archive this machine already uses, as its own apt sources name
# it (sources.list, sources.list.d/*.list and *.sources, parsed by apt
# itself): the first with a main component for a release suite (not
# -updates, -security or -backports). The project names no mirror.
debian_mirror() {
    apt-get indextargets --no-release-info 'Identifier: Packages' \
        --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 2>/dev/null |
        awk '$3 == "main" && $2 !~ /-/ {print $1; exit}'
}

# Debian unstable's cloud kernel (virtio built in, no module tree needed),
# for the VM tests of sched_ext and of a kernel booted without modules. A
# private apt configuration under the cache: the machine's own sources and
# state stay untouched.
sid=.cache/kernel-sid
if ! compgen -G "$sid/usr/lib/modules/*/vmlinuz" >/dev/null; then
    mirror=$(debian_mirror)
    if [ -z "$mirror" ]; then
        echo "setup-tests: no Debian archive with a main component in this machine's apt sources" \
            "(/etc/apt/sources.list, /etc/apt/sources.list.d/*.list or *.sources); add the one" \
            "this machine installs from, then run this again" >&2
        exit 1
    fi
    apt_dir=$PWD/.cache/sid-apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/download"
    echo "deb $mirror sid main" > "$apt_dir/sources.list"
    chown -R _apt "$apt_dir/lists" "$apt_dir/archives" "$apt_dir/download" 2>/dev/null || chmod -R 777 "$apt_dir"
    sid_apt=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
             -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
    apt-get "${sid_apt[@]}" update -qq || {
        echo "setup-tests: cannot read sid from $mirror (the Debian archive of this machine's apt sources)" >&2
        exit 1
    }
    pkg=$(apt-cache "${sid_apt[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || { echo "setup-tests: cannot resolve the kernel behind sid's linux-image-cloud-amd64" >&2; exit 1; }
    # Newer Debian kernels split the image package; take the parts that exist.
    version=${pkg#linux-image-}
    parts=("$pkg")
    for part in linux-binary-$version linux-base-$version linux-modules-$version; do
        apt-cache "${sid_apt[@]}" show "$part" >/dev/null 2>&1 && parts+=("$part")
    done
    (cd "$apt_dir/download" && rm -f ./*.deb && apt-get "${sid_apt[@]}" download -qq "${parts[@]}")
    mkdir -p "$sid"
    for deb in "$apt_dir"/download/*.deb; do dpkg-deb -x "$deb" "$sid"; done
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

# Fuzzing (scripts/fuzz.sh) runs cargo-fuzz on the nightly toolchain; where
# no nightly is installed the fuzz runs are skipped, so cargo-fuzz is too.
if cargo +nightly --version >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
echo "setup-tests: scx_bpfland $(.cache/scx/bin/scx_bpfland --version 2>/dev/null | head -1)," \
    "unstable kernel $(ls "$sid"/usr/lib/modules/*/vmlinuz | head -1)"
