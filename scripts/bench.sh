#!/usr/bin/env bash
# Measures what docs/BENCHMARKS.md reports: the init's size, the boot
# timeline (median of RUNS boots), the memory floors and the speed of
# `guestinit decode`. Numbers, not assertions: nothing here fails on a slow
# machine.
#   scripts/bench.sh [size|timeline|floors|sizes|decode|shell|all]   (RUNS=5 by default)
# GUESTINIT=path measures a copy (with its init beside it); NO_BUILD=1 skips
# setup and build; PADS="0 32 96" are the MiB `sizes` includes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || scripts/setup.sh >/dev/null
[ -n "${NO_BUILD:-}" ] || cargo build --release -q
gi=${GUESTINIT:-target/release/guestinit}
init=target/release/init
runs=${RUNS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

size() {
    echo "== init binary"
    local bytes goal=$((80 * 1024)) rss_goal=256 rss
    bytes=$(stat -c %s "$init")
    echo "size: $bytes bytes (stripped, release); goal <= $goal ($((bytes * 100 / goal)) % of it)"
    rss=$("$gi" run --timeline -- /bin/busybox true 2>&1 >/dev/null | sed -n 's/.*init peak RSS \([0-9]*\) KiB.*/\1/p')
    echo "init peak RSS: ${rss:-?} KiB (busybox true); goal <= $rss_goal KiB"
    readelf -l "$init" | grep -q INTERP && echo "static: NO (has PT_INTERP)" || echo "static: yes (no PT_INTERP)"
    readelf -d "$init" 2>&1 | grep -q NEEDED && echo "NEEDED: present" || echo "NEEDED: none"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

timeline() {
    echo "== boot timeline, /bin/busybox true, median of $runs boots (CLOCK_BOOTTIME ms from kernel start)"
    for i in $(seq "$runs"); do
        "$gi" run --timeline -- /bin/busybox true 2>"$tmp/t$i" >/dev/null
    done
    for mark in "init entry" "system ready" "payload start" "payload exit" "output drained"; do
        printf '%-16s %s ms\n' "$mark" "$(grep -h "^  $mark" "$tmp"/t* | awk '{print $(NF>3 && $NF=="ms)" ? NF-3 : NF-1)}' | median)"
    done
    printf '%-16s %s s\n' "host wall" "$(grep -h "QEMU spawn to EXIT" "$tmp"/t* | awk '{print $(NF-1)}' | median)"
    printf '%-16s %s KiB\n' "init peak RSS" "$(grep -h "init peak RSS" "$tmp"/t* | sed 's/.*init peak RSS \([0-9]*\).*/\1/' | median)"
}

# Smallest MiB in [lo, hi] for which "$@" (given the MiB) succeeds, by bisection.
bisect() {
    local lo=$1 hi=$2; shift 2
    while [ $((hi - lo)) -gt 0 ]; do
        local mid=$(((lo + hi) / 2))
        if "$@" "$mid"; then hi=$mid; else lo=$((mid + 1)); fi
    done
    echo "$lo"
}

reaches_init() {
    "$gi" run --memory "$1" --timeout 120 --com1-log "$tmp/com1" -- /bin/busybox true >/dev/null 2>&1 || true
    grep -q "Run /init as init process" "$tmp/com1"
}

runs_payload() {
    "$gi" run --memory "$1" --timeout 120 -- /bin/busybox true >/dev/null 2>&1
}

# The payload floor with PAD MiB of random files included, for the line
# `guestinit run` sizes its guest by (run/memory.rs).
runs_padded() {
    "$gi" run --memory "$1" --timeout 180 --include "$tmp/pad" -- /bin/busybox true >/dev/null 2>&1
}

floors() {
    echo "== memory floors (--memory MiB, payload /bin/busybox true, initramfs $(
        "$gi" pack -o "$tmp/i.cpio" -- /bin/busybox true && stat -c %s "$tmp/i.cpio") bytes)"
    echo "kernel reaches /init: $(bisect 32 256 reaches_init) MiB"
    echo "payload runs to completion: $(bisect 32 256 runs_payload) MiB"
}

sizes() {
    echo "== payload floors by archive size (--include PAD MiB of random files)"
    for pad in ${PADS:-0 32 96}; do
        rm -rf "$tmp/pad" && mkdir "$tmp/pad"
        for i in $(seq "$pad"); do head -c 1048576 /dev/urandom >"$tmp/pad/$i"; done
        "$gi" pack -o "$tmp/p.cpio" --include "$tmp/pad" -- /bin/busybox true
        echo "archive $(stat -c %s "$tmp/p.cpio") bytes: $(bisect 32 1024 runs_padded) MiB"
    done
}

# 64 MiB captures: 16 KiB SOUT frames of text, and the adversarial case of
# back-to-back plausible headers that each claim a 256 KiB payload and fail
# their CRC (every byte offset then starts a candidate frame to check).
captures() {
    perl -MCompress::Zlib -e '
        my $p = substr("the quick brown fox jumps over the lazy dog\n" x 400, 0, 16384);
        my $f = "TUOS" . pack("VVV", length($p), crc32($p), 0) . $p;
        print $f x (64 * 1024 * 1024 / length($f));' >"$tmp/valid"
    perl -e 'print(("TUOS" . pack("VVV", 262144, 0xdeadbeef, 0)) x (4 * 1024 * 1024))' >"$tmp/adversarial"
}

decode() {
    captures
    echo "== guestinit decode, 64 MiB captures, output to /dev/null (median of $runs)"
    for capture in valid adversarial; do
        local size; size=$(stat -c %s "$tmp/$capture")
        for i in $(seq "$runs"); do
            /usr/bin/time -f "%e %M" -o "$tmp/time$i" "$gi" decode "$tmp/$capture" >/dev/null
        done
        local secs kib
        secs=$(cat "$tmp"/time* | awk '{print $1}' | median)
        kib=$(cat "$tmp"/time* | awk '{print $2}' | median)
        rm -f "$tmp"/time*
        printf '%-12s %s MB/s, peak RSS %s KiB\n' "$capture" \
            "$(awk -v b="$size" -v s="$secs" 'BEGIN {printf "%.1f", b / 1e6 / (s > 0 ? s : 0.01)}')" "$kib"
    done
}

# `guestinit shell`: start to prompt and keystroke round trip (its own script).
shell() {
    GUESTINIT="$gi" RUNS="$runs" scripts/bench-shell.sh
}

case "${1:-all}" in
    size) size ;;
    timeline) timeline ;;
    floors) floors ;;
    sizes) sizes ;;
    decode) decode ;;
    shell) shell ;;
    all) size; timeline; floors; sizes; decode; shell ;;
    *) echo "usage: $0 [size|timeline|floors|sizes|decode|shell|all]" >&2; exit 2 ;;
esac
