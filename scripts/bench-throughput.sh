#!/usr/bin/env bash
# Throughput of the bulk path, all figures of a set from ONE VM boot (same
# kernel, same QEMU flags): 100 MiB of `dd bs=64k` from /dev/zero
#   raw    to a second virtio port added with --qemu-arg (host side: /dev/null),
#   framed to stdout, through the init's SOUT frames (host side: /dev/null),
#   pipe   through a pipe to a second dd that writes the raw port: what any
#          reader of a pipe pays before framing (the ceiling of the design),
#   null   to /dev/null inside the guest (the producer's limit).
# Each set runs with 2 vCPUs (the producer and the init each on one, as on a
# test machine) and with 1 (`run`'s default, where they take turns).
# The init's peak RSS comes from `--timeline` (its smaps after the run).
# Guest times come from `busybox time` (10 ms steps); the host time of the
# framed stream runs from its first byte to its last, as read from
# `guestinit run`'s stdout. Prints markdown tables (median of RUNS boots per
# vCPU count) on stdout; progress goes to stderr.
#   scripts/bench-throughput.sh   (RUNS=3 by default; NO_BUILD=1 skips setup and build)
# GUESTINIT=path measures a copy (with its init beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || scripts/setup.sh >/dev/null
[ -n "${NO_BUILD:-}" ] || cargo build --release -q
gi=${GUESTINIT:-target/release/guestinit}
runs=${RUNS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The raw port: a virtio-serial device of its own (guestinit's bus has no
# free port numbers), with one named port.
raw_port=(--qemu-arg -device --qemu-arg virtio-serial-pci,id=benchser
    --qemu-arg -chardev --qemu-arg file,id=benchraw,path=/dev/null
    --qemu-arg -device --qemu-arg virtserialport,bus=benchser.0,nr=1,chardev=benchraw,name=bench.raw)

# Each figure's line on stderr: "bench NAME SECONDS". Only the framed dd
# writes to stdout.
payload='
set -e
bb=/bin/busybox
dd="$bb dd if=/dev/zero bs=64k count=1600"
port=
for d in /sys/class/virtio-ports/*; do
    [ "$($bb cat "$d/name" 2>/dev/null)" = bench.raw ] && port=/dev/${d##*/}
done
[ -n "$port" ] || { echo "no port named bench.raw" >&2; exit 1; }
timed() { name=$1; shift; $bb time -f "bench $name %e" "$@"; }
timed raw $dd of="$port"
timed framed $dd
timed pipe $bb sh -c "$dd 2>/dev/null | $bb dd bs=64k of=$port 2>/dev/null"
timed null $dd of=/dev/null
'

# Seconds from the first byte on stdin to the last (not to EOF, which waits
# for the VM's end), the bytes discarded.
host_clock() {
    perl -MTime::HiRes=time -e '
        my ($buf, $first, $last, $n);
        while (my $r = sysread(STDIN, $buf, 1 << 20)) { $last = time; $first //= $last; $n += $r }
        printf "%.3f %d\n", ($last // 0) - ($first // 0), $n;'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# One table for CPUS vCPUs.
measure() {
    local cpus=$1 i name
    for i in $(seq "$runs"); do
        echo "throughput, $cpus vCPU: boot $i/$runs" >&2
        "$gi" run --timeline --timeout 600 --cpus "$cpus" "${raw_port[@]}" -- /bin/busybox sh -c "$payload" \
            2>"$tmp/err$cpus.$i" | host_clock >"$tmp/host$cpus.$i" || true
        for name in raw framed pipe null; do
            grep -q "^bench $name " "$tmp/err$cpus.$i" || { cat "$tmp/err$cpus.$i" >&2; exit 1; }
        done
    done
    fig() { grep -h "^bench $1 " "$tmp"/err"$cpus".* | awk '{print $3}' | median; }
    local raw framed pipe null host bytes rss
    raw=$(fig raw) framed=$(fig framed) pipe=$(fig pipe) null=$(fig null)
    host=$(awk '{print $1}' "$tmp"/host"$cpus".* | median)
    bytes=$(awk '{print $2}' "$tmp/host$cpus.1")
    rss=$(sed -n 's/.*init peak RSS \([0-9]*\) KiB.*/\1/p' "$tmp"/err"$cpus".* | median)
    echo "| 100 MiB of \`dd bs=64k\`, one VM, $cpus vCPU (median of $runs boots) | guest s | MiB/s | vs raw port |"
    echo "|---|---|---|---|"
    echo "| raw virtio port (\`--qemu-arg\`, host: /dev/null) | $raw | $(mibs "$raw") | 100 % |"
    echo "| framed stdout (SOUT frames, host: /dev/null) | $framed | $(mibs "$framed") | $(pct "$raw" "$framed") |"
    echo "| framed stdout, host first to last byte ($bytes bytes) | $host | $(mibs "$host") | $(pct "$raw" "$host") |"
    echo "| a pipe, then \`dd\` to the raw port (no framing: the pipe hop alone) | $pipe | $(mibs "$pipe") | $(pct "$raw" "$pipe") |"
    echo "| /dev/null in the guest (the producer's limit) | $null | $(mibs "$null") | $(pct "$raw" "$null") |"
    echo
    echo "init peak RSS while streaming, $cpus vCPU: $rss KiB (median of $runs boots)"
    echo
}

mibs() { awk -v s="$1" 'BEGIN {printf "%.1f", (s > 0) ? 100 / s : 0}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f %%", (b > 0) ? 100 * a / b : 0}'; }

measure 2
measure 1
