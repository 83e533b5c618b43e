#!/usr/bin/env bash
# Measures every figure of docs/BENCHMARKS.md, each beside its anchor measured
# in the same run, and writes that file from docs/BENCHMARKS.in.md (its prose,
# with one @@SECTION@@ line per generated table). Numbers, not assertions:
# nothing here fails on a slow machine.
#   scripts/bench.sh [all|SECTION...]   all (the default) writes docs/BENCHMARKS.md;
#                                       named sections print their markdown
# Sections: size timeline anchors throughput floors sizes decode modes levers options warm matrix
# collect schedctl.
# RUNS=5 boots per figure (alternated between the variants compared, so a
# machine's load falls on all of them alike); LEVER_RUNS=3 per lever;
# LEVER_ONLY=REGEX measures the levers whose name matches;
# GUESTINIT=path measures a copy (with its init beside it); NO_BUILD=1 skips
# setup and build; PADS="0 32" are the MiB `sizes` includes; NO_VNG=1 skips
# installing virtme-ng.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || scripts/setup-tests.sh >/dev/null
[ -n "${NO_BUILD:-}" ] || cargo build --release -q
gi=${GUESTINIT:-target/release/guestinit}
init=$(dirname "$gi")/init
runs=${RUNS:-5}
lever_runs=${LEVER_RUNS:-3}
deb_kernel=$(ls .cache/kernel/boot/vmlinuz-* | head -1)
sid_kernel=$(ls .cache/kernel-sid/usr/lib/modules/*/vmlinuz | head -1)
payload=(/bin/busybox true)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
md=$tmp/md
mkdir -p "$md"

say() { echo "bench: $*" >&2; }

# Statistics of the numbers on stdin, one a line: median, and "min-max".
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
spread() { sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {if (NR) print lo "-" hi}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b}'; }

kernel_of() { case $1 in deb) echo "$deb_kernel" ;; sid) echo "$sid_kernel" ;; esac; }
kernel_name() { case $1 in deb) echo "Debian 12 $(basename "$deb_kernel" | sed 's/vmlinuz-//')" ;;
    sid) echo "Debian unstable $(basename "$(dirname "$sid_kernel")")" ;; esac; }

# The archive `run` would boot for KERNEL (deb|sid), packed once.
archive() {
    [ -f "$tmp/$1.cpio" ] || "$gi" pack -o "$tmp/$1.cpio" --kernel "$(kernel_of "$1")" -- "${payload[@]}"
    echo "$tmp/$1.cpio"
}

# One `guestinit run --timeline` on KERNEL with ARGS; appends to FILE one
# line: host wall (s, process start to exit), QEMU spawn to EXIT (s), user+sys
# CPU of the run and QEMU (s), then each timeline mark (ms) as NAME=VALUE.
# Cold (`--cold`) unless ARGS start with `%warm`: every other figure is a boot's.
timed_run() {
    local kernel=$1 file=$2; shift 2
    local t0 t1 how=(--cold)
    [ "${1:-}" = %warm ] && { how=(); shift; }
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$tmp/cpu" "$gi" run --timeline "${how[@]}" --kernel "$(kernel_of "$kernel")" "$@" \
        </dev/null >/dev/null 2>"$tmp/timeline" || { say "run failed: $*"; tail -5 "$tmp/timeline" >&2; return 0; }
    t1=$(date +%s.%N)
    awk -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" -v cpu="$(tail -1 "$tmp/cpu" | awk '{print $1 + $2}')" '
        /QEMU spawn to EXIT/ {spawn = $(NF-1)}
        /init peak RSS/ {for (i = 1; i < NF; i++) if ($i == "RSS" && $(i-1) == "peak") rss = $(i+1)}
        /^  [a-z].* ms/ {name = $1; for (i = 2; $(i+1) != "ms"; i++) name = name "_" $i; marks = marks " " name "=" $(i)}
        END {print wall, spawn, cpu, "rss=" rss marks}' "$tmp/timeline" >>"$file"
}

# Column N (1-based, or a mark name) of a timed_run FILE, one value a line.
column() {
    [ -f "$1" ] || return 0
    case $2 in
        [0-9]*) awk -v n="$2" '{print $n}' "$1" ;;
        *) awk -v k="$2" '{for (i = 4; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2]}}' "$1" ;;
    esac
}
# The difference of two marks per line.
between() { [ -f "$1" ] || return 0; awk -v a="$2" -v b="$3" '{for (i = 4; i <= NF; i++) {split($i, kv, "="); m[kv[1]] = kv[2]} if ((a in m) && (b in m)) print m[b] - m[a]; delete m}' "$1"; }
cell() { local v; v=$("${@}" | median); echo "${v:--} ($("$@" | spread))"; }

size() {
    say "size"
    local bytes; bytes=$(stat -c %s "$init")
    local static="yes (no PT_INTERP, no NEEDED)"
    readelf -l "$init" | grep -q INTERP && static="NO: has PT_INTERP"
    readelf -d "$init" 2>&1 | grep -q NEEDED && static="NO: has NEEDED"
    cat <<EOF
| figure | measured | anchor | ratio |
|---|---|---|---|
| init size (release, stripped) | $bytes bytes | 80 KiB = 81920 bytes (goal) | $(ratio "$bytes" 81920) |
| static | $static | | |
EOF
}

timeline() {
    say "timeline: $runs boots on each kernel, alternated"
    local k
    for i in $(seq "$runs"); do
        for k in deb sid; do timed_run "$k" "$tmp/tl.$k" -- "${payload[@]}"; done
    done
    echo "\`guestinit run --timeline -- /bin/busybox true\`, median (min-max) of $runs boots per kernel; ms of CLOCK_BOOTTIME in the guest (from the kernel's start), s of host wall time."
    echo
    echo "| step | $(kernel_name deb) | $(kernel_name sid) |"
    echo "|---|---|---|"
    printf '| kernel start -> init entry | %s | %s |\n' "$(cell column "$tmp/tl.deb" init_entry)" "$(cell column "$tmp/tl.sid" init_entry)"
    local prev=init_entry mark
    for mark in mounts_done modules_loaded port_found kernel_addrs system_ready payload_start payload_exit output_drained; do
        printf '| %s -> %s | %s | %s |\n' "${prev//_/ }" "${mark//_/ }" \
            "$(cell between "$tmp/tl.deb" "$prev" "$mark")" "$(cell between "$tmp/tl.sid" "$prev" "$mark")"
        prev=$mark
    done
    printf '| QEMU spawn to EXIT (s) | %s | %s |\n' "$(cell column "$tmp/tl.deb" 2)" "$(cell column "$tmp/tl.sid" 2)"
    echo
    local srdy_sid mod_deb rest_deb rss
    srdy_sid=$(between "$tmp/tl.sid" init_entry system_ready | median)
    mod_deb=$(between "$tmp/tl.deb" mounts_done modules_loaded | median)
    # Per boot: init entry to SRDY less that boot's module loading.
    rest_deb=$(paste <(between "$tmp/tl.deb" init_entry system_ready) <(between "$tmp/tl.deb" mounts_done modules_loaded) |
        awk '{print $1 - $2}' | median)
    rss=$(cat "$tmp/tl.deb" "$tmp/tl.sid" | awk '{print $4}' | sed 's/rss=//' | median)
    echo "| figure | measured | anchor | ratio |"
    echo "|---|---|---|---|"
    echo "| init entry -> SRDY, $(kernel_name sid) (virtio built in) | $srdy_sid ms | 50 ms (goal) | $(ratio "$srdy_sid" 50) |"
    echo "| init entry -> SRDY less module loading, $(kernel_name deb) | $rest_deb ms (module loading: $mod_deb ms) | 50 ms (goal) | $(ratio "$rest_deb" 50) |"
    echo "| init peak RSS (both kernels) | $rss KiB | 256 KiB (goal) | $(ratio "$rss" 256) |"
}

# --- anchors: the same job done by a busybox-sh /init, and by virtme-ng ---

# QEMU's argv as `guestinit run -v` builds it for KERNEL, one per line, with
# the initramfs, COM1 and the bulk port swapped for files and the other host
# sockets for null chardevs: the same machine, devices and command line.
qemu_argv() {
    local kernel=$1 initrd=$2 com1=$3 bulk=$4
    "$gi" run -v --cold --timeout 120 --kernel "$(kernel_of "$kernel")" -- "${payload[@]}" </dev/null 2>&1 >/dev/null |
        grep -m1 '^guestinit: qemu-system' | COM1=$com1 BULK=$bulk INITRD=$initrd perl -ne '
            s/^guestinit: //; chomp;
            my ($pre, $append, $post) = /^(.*?) -append (.*?) (-(?:device|chardev) .*)$/ or die "no -append in: $_";
            my @argv = (split(" ", $pre), "-append", $append, split(" ", $post));
            shift @argv;
            for (@argv) {
                s/^socket,id=com1,fd=\d+$/file,id=com1,path=$ENV{COM1}/;
                s/^socket,id=bulk,fd=\d+$/file,id=bulk,path=$ENV{BULK}/;
                s/^socket,id=(\w+),fd=\d+$/null,id=$1/;
            }
            for (my $i = 0; $i < @argv; $i++) { $argv[$i + 1] = $ENV{INITRD} if $argv[$i] eq "-initrd" }
            print "$_\n" for @argv;'
}

# The busybox-sh /init: what guestinit does for `busybox true`, as a script.
sh_init() {
    cat <<'EOF'
#!/bin/busybox sh
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in /modules/*.ko; do [ -e "$m" ] && $bb insmod "$m"; done
port=
while [ -z "$port" ]; do
    for d in /sys/class/virtio-ports/*; do
        [ "$($bb cat "$d/name" 2>/dev/null)" = guestinit.bulk ] && port=/dev/${d##*/}
    done
    [ -n "$port" ] || $bb usleep 1000
done
/bin/busybox true
echo "exit $?" >"$port"
$bb poweroff -f
EOF
}

# guestinit's archive for KERNEL with its /init replaced by the script.
sh_archive() {
    local dir=$tmp/sh.$1 src
    [ -f "$dir.cpio" ] && { echo "$dir.cpio"; return; }
    mkdir -p "$dir"
    src=$(archive "$1") # packed here, before the cd: the tool's path may be relative
    (cd "$dir" && cpio -idm --quiet <"$src")
    sh_init >"$dir/init"
    chmod 755 "$dir/init"
    (cd "$dir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$dir.cpio"
    echo "$dir.cpio"
}

# Seconds of one QEMU run of the busybox-sh init, spawn to exit; FAIL when
# it did not report `exit 0` on the bulk port.
sh_run() {
    local kernel=$1 file=$2 argv t0 t1
    rm -f "$tmp/sh.bulk" "$tmp/sh.com1"
    mapfile -t argv < <(qemu_argv "$kernel" "$(sh_archive "$kernel")" "$tmp/sh.com1" "$tmp/sh.bulk")
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$tmp/cpu" timeout 120 qemu-system-x86_64 "${argv[@]}" </dev/null >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    if grep -q "exit 0" "$tmp/sh.bulk" 2>/dev/null; then
        awk -v a="$t0" -v b="$t1" -v cpu="$(tail -1 "$tmp/cpu" | awk '{print $1 + $2}')" 'BEGIN {printf "%.3f %s\n", b - a, cpu}' >>"$file"
    else
        say "busybox-sh init on $kernel did not report exit 0"; tail -5 "$tmp/sh.com1" >&2
    fi
}

# Round N's order: guestinit and busybox-sh swap places each round, and vng,
# the heaviest, goes last, so that each of the two follows it (the other
# kernel's vng) equally often.
ordered() {
    if (($1 % 2)); then echo gi sh vng; else echo sh gi vng; fi
}

# Waits (up to 10 s) until no QEMU or virtiofsd of a finished run lingers:
# vng's virtiofsd outlives vng for a while, and would slow the next run.
quiesce() {
    local t
    for t in $(seq 50); do
        pgrep -x virtiofsd >/dev/null || pgrep -x qemu-system-x86 >/dev/null || return 0
        sleep 0.2
    done
}

# virtme-ng in a venv under .cache (PyPI); `depmod` (kmod) is what it needs
# beside it, and a virtiofsd that takes --shared-dir (the Rust one, from
# crates.io: Debian 12 only has QEMU's C virtiofsd, which vng skips) for a
# kernel without 9p.
vng_setup() {
    local venv=.cache/vng-venv
    # A venv is bound to its path: one moved or copied here is made again.
    "$venv/bin/vng" --version >/dev/null 2>&1 ||
        { rm -rf "$venv" && python3 -m venv "$venv" && "$venv/bin/pip" install -q virtme-ng; } >&2
    command -v depmod >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kmod >&2
    if [ ! -x .cache/virtiofsd/bin/virtiofsd ]; then
        local pkgs=()
        for p in libseccomp-dev libcap-ng-dev; do dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p"); done
        [ ${#pkgs[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
        cargo install -q --locked --root .cache/virtiofsd virtiofsd >&2
    fi
}

# Seconds of one `vng --disable-kvm -v -r KERNEL -- true`, start to exit
# (/usr/bin/time's last line is its CPU: the first says vng's status).
# Success is its init's "script exited with code 0" on the console: vng
# itself exits 255 here, as its init finds no virtio-serial port for the
# script's I/O and falls back to the console.
vng_run() {
    local kernel=$1 file=$2 t0 t1
    t0=$(date +%s.%N)
    PATH=$PWD/.cache/virtiofsd/bin:$PWD/.cache/vng-venv/bin:$PATH /usr/bin/time -f "%U %S" -o "$tmp/cpu" \
        timeout 300 vng --disable-kvm -v -r "$(kernel_of "$kernel")" -- true </dev/null >"$tmp/vng.log" 2>&1 || true
    t1=$(date +%s.%N)
    if grep -aq "script exited with code 0" "$tmp/vng.log"; then
        awk -v a="$t0" -v b="$t1" -v cpu="$(tail -1 "$tmp/cpu" | awk '{print $1 + $2}')" 'BEGIN {printf "%.3f %s\n", b - a, cpu}' >>"$file"
    else
        cp "$tmp/vng.log" "$tmp/vng.failed.$kernel"
        say "vng on $kernel failed: $(grep -a -m3 -E 'not found|failed|stuck|panic -' "$tmp/vng.log" | tr '\n' ' ')"
    fi
}

anchors() {
    [ -n "${NO_VNG:-}" ] || vng_setup
    say "anchors: $runs rounds of guestinit, busybox-sh init, vng on each kernel"
    local k who
    for i in $(seq "$runs"); do
        for k in deb sid; do
            for who in $(ordered "$i"); do
                case $who in
                    gi) timed_run "$k" "$tmp/an.gi.$k" --initramfs "$(archive "$k")" ;;
                    sh) sh_run "$k" "$tmp/an.sh.$k" ;;
                    vng) [ -n "${NO_VNG:-}" ] || vng_run "$k" "$tmp/an.vng.$k" ;;
                esac
                quiesce
            done
        done
    done
    echo "Whole runs of \`busybox true\`, median (min-max) of $runs rounds, guestinit and busybox-sh swapping places each round and vng last, every run once the last one's processes are gone, same kernel; host wall time from process start to exit (guestinit: \`run --initramfs\` of an archive packed beforehand; busybox-sh: QEMU with guestinit's own flags, devices and command line, spawn to exit after \`poweroff -f\`; vng: \`vng --disable-kvm -r KERNEL -- true\`, its own QEMU flags). CPU is user+sys of the run and its children, which a loaded machine disturbs less than wall time."
    echo
    echo "| kernel | guestinit | busybox-sh /init | ratio | virtme-ng | ratio | guestinit QEMU spawn to EXIT |"
    echo "|---|---|---|---|---|---|---|"
    for k in deb sid; do
        local g s v
        g=$(column "$tmp/an.gi.$k" 1 | median)
        s=$(column "$tmp/an.sh.$k" 1 | median)
        v=$(column "$tmp/an.vng.$k" 1 | median)
        printf '| %s | %s s (%s), CPU %s s | %s s (%s), CPU %s s | %s | %s | %s | %s s |\n' "$(kernel_name "$k")" \
            "$g" "$(column "$tmp/an.gi.$k" 1 | spread)" "$(column "$tmp/an.gi.$k" 3 | median)" \
            "${s:--}" "$(column "$tmp/an.sh.$k" 1 | spread)" "$(column "$tmp/an.sh.$k" 2 | median)" \
            "$(ratio "$g" "$s")" \
            "$([ -n "$v" ] && echo "$v s ($(column "$tmp/an.vng.$k" 1 | spread)), CPU $(column "$tmp/an.vng.$k" 2 | median) s" || echo "fails: see below")" \
            "$(ratio "$g" "$v")" "$(column "$tmp/an.gi.$k" 2 | median)"
    done
    for k in deb sid; do
        [ -f "$tmp/vng.failed.$k" ] || continue
        echo
        echo "virtme-ng on $(kernel_name "$k"), the console lines that say why it failed:"
        echo
        echo '```'
        grep -a -E 'not found|failed|No such|stuck|panic -' "$tmp/vng.failed.$k" | grep -av 'crypto-' | head -8 | cut -c1-160
        echo '```'
    done
}

# Issue 13's throughput figures come from the throughput bench's own script,
# when it is there; it prints its markdown on stdout.
throughput() {
    if [ -x scripts/bench-throughput.sh ]; then
        say "throughput: scripts/bench-throughput.sh"
        NO_BUILD=1 GUESTINIT="$gi" scripts/bench-throughput.sh
    else
        echo "(scripts/bench-throughput.sh is not in this tree.)"
    fi
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

# The kernel's own floor: it reaches /init (logged at the default loglevel).
reaches_init() {
    "$gi" run --memory "$1" --timeout 120 --com1-log "$tmp/com1" --append loglevel=7 -- "${payload[@]}" >/dev/null 2>&1 || true
    grep -q "Run /init as init process" "$tmp/com1"
}

runs_payload() {
    "$gi" run --memory "$1" --timeout 120 -- "${payload[@]}" >/dev/null 2>&1
}

# The payload floor with PAD MiB of random files included, for the line
# `guestinit run` sizes its guest by (run/memory.rs).
runs_padded() {
    "$gi" run --memory "$1" --timeout 180 --include "$tmp/pad" -- "${payload[@]}" >/dev/null 2>&1
}

floors() {
    say "floors: bisecting --memory"
    local kernel_floor payload_floor
    kernel_floor=$(bisect 32 256 reaches_init)
    payload_floor=$(bisect 32 256 runs_payload)
    echo "Bisected in 1 MiB steps on $(kernel_name deb), initramfs of $(stat -c %s "$(archive deb)") bytes."
    echo
    echo "| figure | measured | anchor | gap |"
    echo "|---|---|---|---|"
    echo "| memory floor: the payload runs to completion | $payload_floor MiB | the kernel reaches /init: $kernel_floor MiB | $((payload_floor - kernel_floor)) MiB (goal: within 1 MiB) |"
}

sizes() {
    say "sizes: floors by archive size"
    echo "| PAD | archive | measured floor |"
    echo "|---|---|---|"
    for pad in ${PADS:-0 32}; do
        rm -rf "$tmp/pad" && mkdir "$tmp/pad"
        for i in $(seq "$pad"); do head -c 1048576 /dev/urandom >"$tmp/pad/$i"; done
        "$gi" pack -o "$tmp/p.cpio" --include "$tmp/pad" -- "${payload[@]}"
        echo "| $pad MiB | $(stat -c %s "$tmp/p.cpio") bytes | $(bisect 32 1024 runs_padded) MiB |"
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
    say "decode"
    captures
    echo "\`guestinit decode\` of 64 MiB captures, output to /dev/null, median of $runs."
    echo
    echo "| capture | throughput | peak RSS |"
    echo "|---|---|---|"
    for capture in valid adversarial; do
        local size; size=$(stat -c %s "$tmp/$capture")
        for i in $(seq "$runs"); do
            /usr/bin/time -f "%e %M" -a -o "$tmp/decode.time" "$gi" decode "$tmp/$capture" >/dev/null
        done
        local secs kib
        secs=$(awk '{print $1}' "$tmp/decode.time" | median)
        kib=$(awk '{print $2}' "$tmp/decode.time" | median)
        rm -f "$tmp/decode.time"
        echo "| $capture | $(awk -v b="$size" -v s="$secs" 'BEGIN {printf "%.1f", b / 1e6 / (s > 0 ? s : 0.01)}') MB/s | $kib KiB |"
    done
    # The decoder against crc32fast's own throughput: the throughput bench's
    # criterion bench, when it is there.
    if [ -f benches/decode.rs ]; then
        say "decode: cargo bench --bench decode"
        cargo bench -q --bench decode 2>/dev/null >"$tmp/criterion"
        echo
        echo "| \`cargo bench --bench decode\`: 1 GiB of 16 KiB frames | throughput (criterion's median) | vs crc32fast::hash |"
        echo "|---|---|---|"
        # A bench's name line, then its first thrpt line: [low median high].
        awk '/^1 GiB of/ {name = $0; sub(/^1 GiB of 16 KiB frames\//, "", name)}
             /thrpt:/ && name != "" {print name "\t" $4 " " $5; name = ""}' "$tmp/criterion" |
            awk -F'\t' '{split($2, v, " ")} NR == 1 {base = v[1]}
                {printf "| %s | %s | %.0f %% |\n", $1, $2, 100 * v[1] / base}'
        echo
        sed -n '/interleaved/,$p' "$tmp/criterion"
    fi
}

# --- boot levers: each measured as the default against its alternative ---

# NAME|the default's arguments|the alternative's|what it is. `%cpio` is the
# archive packed for the kernel (`%cpio.gz` etc. compressed by the system
# tools); without `--initramfs` the payload is packed by `run`. A lever
# adopted in run/qemu.rs is measured as the old setting against the new
# default: `%append-without:A,B` is the default command line less A and B,
# given as QEMU's last `-append` (which wins), `-cpu` and `-machine` alike.
# `%kernel` is the kernel's image (a later `-kernel` wins over the vmlinux
# `run` boots by PVH), `%tsc` the `--append` of the host's TSC rate and
# the loops per jiffy it implies (`tsc_early_khz=`, `lpj=`).
LEVERS=(
    "qboot + PVH (adopted)|--qemu-arg=-bios --qemu-arg=bios-256k.bin --qemu-arg=-kernel --qemu-arg=%kernel||SeaBIOS and the bzImage (the old defaults) vs qboot and the vmlinux by PVH"
    "qboot (adopted)|--qemu-arg=-bios --qemu-arg=bios-256k.bin||firmware: SeaBIOS vs qboot (both with PVH)"
    "qboot with the bzImage|--qemu-arg=-bios --qemu-arg=bios-256k.bin --qemu-arg=-kernel --qemu-arg=%kernel|--qemu-arg=-kernel --qemu-arg=%kernel|firmware: SeaBIOS vs qboot, both booting the bzImage"
    "PVH (adopted)|--qemu-arg=-kernel --qemu-arg=%kernel||-kernel: the bzImage vs its vmlinux by PVH (both with qboot)"
    "microvm||--qemu-arg=-machine --qemu-arg=microvm,pcie=on %tsc|machine: q35 vs microvm with PCIe, tsc_early_khz= and lpj= (both with qboot and PVH)"
    "machine q35 (adopted)|--qemu-arg=-machine --qemu-arg=pc||QEMU machine type: pc (i440FX) vs q35"
    "cpu qemu64|--qemu-arg=-cpu --qemu-arg=max|--qemu-arg=-cpu --qemu-arg=qemu64|-cpu under TCG: max vs qemu64"
    "cpus 2|--cpus=1|--cpus=2|one vCPU (run's default) vs two, each a host thread under TCG"
    "loglevel=5 (adopted)|%append-without:loglevel=5|--append=loglevel=5|the console: every message vs warnings and worse"
    "quiet|--append=loglevel=5|--append=quiet|the console: warnings and worse vs errors and worse"
    "no_timer_check (adopted)|%append-without:no_timer_check|--append=no_timer_check|skip the IO-APIC timer check"
    "cryptomgr.notests (adopted)|%append-without:cryptomgr.notests|--append=cryptomgr.notests|the kernel's crypto self-tests vs none"
    "tsc=reliable|--append=loglevel=5|--append=tsc=reliable|no TSC watchdog"
    "8250.nr_uarts=2|--append=loglevel=5|--append=8250.nr_uarts=2|probe 2 UARTs, not 4"
    "i8042.noaux|--append=loglevel=5|--append=i8042.noaux|no PS/2 mouse probe"
    "pci=noearly|--append=loglevel=5|--append=pci=noearly|no early PCI scan"
    "mitigations=off|--append=loglevel=5|--append=mitigations=off|no CPU bug mitigations"
    "nokaslr|--append=loglevel=5|--append=nokaslr|no kernel address randomization"
    "initramfs gzip|--initramfs %cpio|--initramfs %cpio.gz|archive: none vs gzip -9"
    "initramfs zstd|--initramfs %cpio|--initramfs %cpio.zst|archive: none vs zstd -19"
    "initramfs lz4|--initramfs %cpio|--initramfs %cpio.lz4|archive: none vs lz4 -l -9"
)

# The archive of KERNEL compressed as the kernel's decompressors take it.
compressed() {
    local cpio; cpio=$(archive "$1")
    [ -f "$cpio.gz" ] || gzip -9 -c "$cpio" >"$cpio.gz"
    [ -f "$cpio.zst" ] || zstd -q -19 -c "$cpio" >"$cpio.zst"
    [ -f "$cpio.lz4" ] || lz4 -q -l -9 -c "$cpio" >"$cpio.lz4"
}

# The kernel command line `run` gives KERNEL, from `run -v`.
default_append() {
    [ -f "$tmp/append.$1" ] || "$gi" run -v --cold --kernel "$(kernel_of "$1")" -- "${payload[@]}" </dev/null 2>&1 >/dev/null |
        grep -m1 '^guestinit: qemu-system' | sed 's/.* -append \(.*\) -chardev socket,id=com1,.*/\1/' >"$tmp/append.$1"
    cat "$tmp/append.$1"
}

# The host's TSC rate in kHz, which TCG's guest TSC runs at (it reads the
# host's): the kernel's calibration, else /proc/cpuinfo's clock.
tsc_khz() {
    { dmesg 2>/dev/null | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p; s/.*tsc: Detected \([0-9.]*\) MHz.*/\1/p'
        awk -F': ' '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo; } | head -1 | awk '{printf "%d", $1 * 1000}'
}

# `%tsc` for KERNEL: the TSC rate and the loops per jiffy at its CONFIG_HZ
# (the TSC delay loop counts cycles), which microvm needs to boot at all.
tsc_append() {
    local khz hz config
    khz=$(tsc_khz)
    case $1 in deb) config=$(ls .cache/kernel/boot/config-* | head -1) ;; sid) config=$(dirname "$sid_kernel")/config ;; esac
    hz=$(sed -n 's/^CONFIG_HZ=//p' "$config")
    echo "--append=tsc_early_khz=$khz lpj=$((khz * 1000 / ${hz:-250}))"
}

# One lever run: KERNEL FILE ARGS (a LEVERS side, expanded).
lever_run() {
    local kernel=$1 file=$2 args=() a drop
    for a in $3; do
        case $a in
            %tsc) args+=("$(tsc_append "$kernel")") ;;
            *%kernel*) args+=("${a/\%kernel/$(kernel_of "$kernel")}") ;;
            %append-without:*)
                local line=" $(default_append "$kernel") "
                local drops=${a#%append-without:}
                for drop in ${drops//,/ }; do line=${line/ $drop / }; done
                args+=(--qemu-arg=-append "--qemu-arg=$(echo $line)") ;;
            *) args+=("${a/\%cpio/$(archive "$kernel")}") ;;
        esac
    done
    [[ " ${args[*]} " == *" --initramfs "* ]] || args+=(-- "${payload[@]}")
    timed_run "$kernel" "$file" "${args[@]}"
}

levers() {
    local k spec name old new what n=0
    for k in ${LEVER_KERNELS:-deb sid}; do compressed "$k"; done
    echo "Each lever against its baseline (for an adopted lever: the old setting, against the new default), $lever_runs boots each, alternated; median (min-max). Wall: QEMU spawn to EXIT; CPU: user+sys of the run and QEMU (steadier on a loaded machine); entry: kernel start to init entry, guest ms."
    echo
    echo "| kernel | lever | baseline: wall s / CPU s / entry ms | lever: wall s / CPU s / entry ms | CPU ratio |"
    echo "|---|---|---|---|---|"
    for k in ${LEVER_KERNELS:-deb sid}; do
        for spec in "${LEVERS[@]}"; do
            IFS='|' read -r name old new what <<<"$spec"
            n=$((n + 1))
            [[ -z ${LEVER_ONLY:-} || $name =~ $LEVER_ONLY ]] || continue
            say "lever $name on $k"
            for i in $(seq "$lever_runs"); do
                lever_run "$k" "$tmp/lv.$n.old" "$old"
                lever_run "$k" "$tmp/lv.$n.new" "$new"
            done
            local side out=()
            for side in old new; do
                out+=("$(column "$tmp/lv.$n.$side" 2 | median) ($(column "$tmp/lv.$n.$side" 2 | spread)) / $(column "$tmp/lv.$n.$side" 3 | median) / $(column "$tmp/lv.$n.$side" init_entry | median)")
            done
            echo "| $k | $name: $what | ${out[0]} | ${out[1]} | $(ratio "$(column "$tmp/lv.$n.new" 3 | median)" "$(column "$tmp/lv.$n.old" 3 | median)") |"
        done
    done
}

# `guestinit shell` (start to prompt, keystroke to echo: scripts/bench-shell.sh)
# and `guestinit mkdisk` (wall time of a 256 MiB ext4 image), on the default kernel.
modes() {
    say "modes: shell and mkdisk, $runs each"
    local out
    out=$(GUESTINIT="$gi" RUNS="$runs" scripts/bench-shell.sh)
    echo "| figure | measured |"
    echo "|---|---|"
    echo "$out" | sed -n 's/^\(start to prompt\|keystroke to echo\): \(.*\)/| `guestinit shell`: \1 | \2 |/p'
    local i t0
    for i in $(seq "$runs"); do
        rm -f "$tmp/disk.img"
        t0=$(date +%s.%N)
        "$gi" mkdisk --fs ext4 "$tmp/disk.img" >/dev/null 2>&1 || say "mkdisk failed"
        awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f\n", b - a}'
    done >"$tmp/mkdisk"
    echo "| \`guestinit mkdisk --fs ext4\` (256 MiB), wall | $(median <"$tmp/mkdisk") s ($(spread <"$tmp/mkdisk")) |"
}

# --- warm: boot once, run many (issue 21) ---

# The arguments that bring back the cold boot of before the levers of issue
# 21 (SeaBIOS, the bzImage and the i440FX: QEMU's last -bios and -kernel
# win, and the last -machine type) for the "cold, old defaults" column.
OLD_COLD=(--qemu-arg=-bios --qemu-arg=bios-256k.bin --qemu-arg=-kernel "--qemu-arg=$deb_kernel" --qemu-arg=-machine --qemu-arg=pc)

# One run for the warm table: KIND (old|cold|warm) FILE.
warm_run() {
    local kind=$1 file=$2
    case $kind in
        old) timed_run deb "$file" "${OLD_COLD[@]}" -- "${payload[@]}" ;;
        cold) timed_run deb "$file" -- "${payload[@]}" ;;
        warm) timed_run deb "$file" %warm -- "${payload[@]}" ;;
        sh) sh_run deb "$file" ;;
        vng) vng_run deb "$file" ;;
    esac
}

# Wall seconds of N runs of KIND one after another, as a test loop runs them.
loop_of() {
    local kind=$1 n=$2 t0 i extra=()
    [ "$kind" = cold ] && extra=(--cold)
    t0=$(date +%s.%N)
    for i in $(seq "$n"); do
        "$gi" run --kernel "$deb_kernel" "${extra[@]}" -- "${payload[@]}" </dev/null >/dev/null 2>&1 || say "loop run failed"
    done
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'
}

warm() {
    [ -n "${NO_VNG:-}" ] || vng_setup
    export XDG_CACHE_HOME=$tmp/xdg
    say "warm: the snapshot, then $runs rounds of old cold, cold, warm, busybox-sh, vng"
    "$gi" run --kernel "$deb_kernel" -- "${payload[@]}" </dev/null >/dev/null 2>&1
    "$gi" run --kernel "$deb_kernel" -- "${payload[@]}" </dev/null >/dev/null 2>&1
    /usr/bin/time -f "%e" -o "$tmp/first" "$gi" run --kernel "$deb_kernel" --memory 512 -- "${payload[@]}" </dev/null >/dev/null 2>&1
    /usr/bin/time -f "%e" -o "$tmp/takeless" "$gi" run --cold --kernel "$deb_kernel" --memory 512 -- "${payload[@]}" </dev/null >/dev/null 2>&1
    local first takeless
    first=$(tail -1 "$tmp/first")
    takeless=$(tail -1 "$tmp/takeless")
    local i kind kinds="old cold warm sh"
    [ -n "${NO_VNG:-}" ] || kinds="$kinds vng"
    for i in $(seq "$runs"); do
        for kind in $kinds; do warm_run "$kind" "$tmp/wm.$kind"; done
    done
    local base; base=$(column "$tmp/wm.old" 1 | median)
    echo "\`guestinit run -- /bin/busybox true\` on $(kernel_name deb), $runs rounds alternated; median (min-max). Host wall: the process's start to its exit; CPU: user+sys of the run and QEMU."
    echo
    echo "| run | host wall, s | CPU, s | wall / cold (old defaults) |"
    echo "|---|---|---|---|"
    for kind in $kinds; do
        local name
        case $kind in
            old) name="cold, the defaults before issue 21 (SeaBIOS, the bzImage, the i440FX)" ;;
            cold) name="cold, the new defaults (\`--cold\`)" ;;
            warm) name="warm (restored from the snapshot)" ;;
            sh) name="a busybox-sh init, the same QEMU flags (QEMU spawn to exit)" ;;
            vng) name="virtme-ng (\`vng --disable-kvm -r KERNEL -- true\`)" ;;
        esac
        echo "| $name | $(cell column "$tmp/wm.$kind" 1) | $(cell column "$tmp/wm.$kind" "$([ "$kind" = sh ] || [ "$kind" = vng ] && echo 2 || echo 3)") | $(ratio "$(column "$tmp/wm.$kind" 1 | median)" "$base") |"
    done
    echo
    echo "The first run of a machine (\`--memory 512\`, a new one) boots and takes the snapshot: $first s, against $takeless s for the same run with \`--cold\`."
    echo
    say "warm: 20 short runs, cold then warm"
    local cold20 warm20
    cold20=$(loop_of cold 20)
    warm20=$(loop_of warm 20)
    echo "| 20 short runs one after another | total wall, s | ratio |"
    echo "|---|---|---|"
    echo "| cold (\`--cold\`) | $cold20 | 1.00 |"
    echo "| warm | $warm20 | $(ratio "$warm20" "$cold20") |"
    unset XDG_CACHE_HOME
}

# What each VM option of issue 20 costs at boot: a run of the payload with
# and without it, alternated, on the default kernel; the plain run is the
# anchor (and `--cpus 4` that of the 4-CPU topology).
options() {
    say "options: --net, --share, --topology; $runs each"
    local share=$tmp/share
    mkdir -p "$share"
    local -a args=("" "--net user" "--share $share" "--cpus 4" "--topology 1,2,2,1")
    local i n
    for i in $(seq "$runs"); do
        for n in "${!args[@]}"; do
            # Word-split on purpose: each entry is a few plain options.
            # shellcheck disable=SC2086
            timed_run deb "$tmp/opt.$n" ${args[$n]} -- "${payload[@]}"
        done
    done
    echo "| options | host wall, s | QEMU spawn to EXIT, s | wall vs the anchor |"
    echo "|---|---|---|---|"
    for n in "${!args[@]}"; do
        local anchor=0
        [ "$n" -eq 4 ] && anchor=3
        local name=${args[$n]:-(none: the anchor)}
        echo "| \`${name//$share/DIR}\` | $(cell column "$tmp/opt.$n" 1) | $(cell column "$tmp/opt.$n" 2) | $(ratio "$(column "$tmp/opt.$n" 1 | median)" "$(column "$tmp/opt.$anchor" 1 | median)") |"
    done
}

# `guestinit matrix --jobs 2` on 2 kernels x 2 topologies against the same
# 4 runs one after another, MATRIX_RUNS rounds alternated (default 2), warm
# (each machine's snapshot taken first) and cold.
matrix() {
    export XDG_CACHE_HOME=$tmp/xdg-matrix
    local rounds=${MATRIX_RUNS:-2} i how k t
    local mpayload=(/bin/busybox sh -c 'nproc; uname -r')
    local topologies=(1,1,1,1 1,1,2,1)
    say "matrix: the 4 snapshots, then $rounds rounds of matrix and 4 runs, warm and cold"
    "$gi" matrix --kernel "$deb_kernel" --kernel "$sid_kernel" --topology 1,1,1,1 --topology 1,1,2,1 \
        --jobs 2 -- "${mpayload[@]}" </dev/null >/dev/null 2>&1 || say "matrix warm-up failed"
    for i in $(seq "$rounds"); do
        for how in warm cold; do
            local extra=()
            [ "$how" = cold ] && extra=(--cold)
            t=$(date +%s.%N)
            "$gi" matrix --kernel "$deb_kernel" --kernel "$sid_kernel" --topology 1,1,1,1 --topology 1,1,2,1 \
                --jobs 2 "${extra[@]}" -- "${mpayload[@]}" </dev/null >/dev/null 2>&1 || say "matrix failed"
            awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f\n", b - a}' >>"$tmp/mx.$how.matrix"
            t=$(date +%s.%N)
            for k in "$deb_kernel" "$sid_kernel"; do
                for topology in "${topologies[@]}"; do
                    "$gi" run --kernel "$k" --topology "$topology" "${extra[@]}" -- "${mpayload[@]}" \
                        </dev/null >/dev/null 2>&1 || say "run failed"
                done
            done
            awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f\n", b - a}' >>"$tmp/mx.$how.serial"
        done
    done
    echo "2 kernels ($(kernel_name deb), $(kernel_name sid)) x 2 topologies (1,1,1,1 and 1,1,2,1), \`busybox sh -c 'nproc; uname -r'\`, on a machine of $(nproc) cores; $rounds rounds alternated, median (min-max) wall seconds."
    echo
    echo "| boots | \`matrix --jobs 2\` | 4 \`run\`s one after another | matrix / serial |"
    echo "|---|---|---|---|"
    for how in warm cold; do
        echo "| $how | $(cell cat "$tmp/mx.$how.matrix") | $(cell cat "$tmp/mx.$how.serial") | $(ratio "$(median <"$tmp/mx.$how.matrix")" "$(median <"$tmp/mx.$how.serial")") |"
    done
    unset XDG_CACHE_HOME
}

# `--collect` of 100 MiB (10 files of 10 MiB made in the guest) against the
# same bytes as stdout, each beside the anchor that makes the files and sends
# nothing; cold boots on the default kernel, alternated.
collect() {
    say "collect: $runs rounds of the anchor, --collect and stdout, 100 MiB"
    local mk='mkdir -p /out; i=0; while [ $i -lt 10 ]; do dd if=/dev/zero of=/out/f$i bs=1M count=10 2>/dev/null; i=$((i+1)); done'
    local i how got
    for i in $(seq "$runs"); do
        for how in anchor collect stdout; do
            rm -rf "$tmp/collected"
            local args=(--cold --kernel "$deb_kernel" --memory 768) p=$mk t
            [ "$how" = collect ] && args+=(--collect "/out:$tmp/collected")
            [ "$how" = stdout ] && p="$mk; cat /out/*"
            t=$(date +%s.%N)
            "$gi" run "${args[@]}" -- /bin/busybox sh -c "$p" </dev/null >"$tmp/collect.out" 2>/dev/null || say "collect run failed: $how"
            awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f\n", b - a}' >>"$tmp/cl.$how"
            got=$(( $(stat -c %s "$tmp/collect.out") + $( { find "$tmp/collected" -type f -exec cat {} + 2>/dev/null || true; } | wc -c) ))
            [ "$how" = anchor ] || [ "$got" -eq 104857600 ] || say "collect: $how brought $got bytes, not 104857600"
        done
    done
    local base; base=$(median <"$tmp/cl.anchor")
    echo "100 MiB as 10 files of 10 MiB, made in the guest by \`dd if=/dev/zero\`, on $(kernel_name deb), \`--memory 768\`, cold; $runs rounds alternated, median (min-max) host wall."
    echo
    echo "| run | host wall, s | less the anchor, s | MiB/s of the transfer |"
    echo "|---|---|---|---|"
    echo "| anchor: the files made, nothing sent | $(cell cat "$tmp/cl.anchor") | | |"
    for how in collect stdout; do
        local m name; m=$(median <"$tmp/cl.$how")
        name="\`--collect /out:HOST_DIR\`"
        [ "$how" = stdout ] && name="\`cat /out/*\` as stdout"
        echo "| $name | $(cell cat "$tmp/cl.$how") | $(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.2f", a - b}') | $(awk -v a="$m" -v b="$base" 'BEGIN {if (a > b) printf "%.0f", 100 / (a - b); else print "-"}') |"
    done
}

# The scheduler stopped and started on the payload's request, 5 times in a
# row on the sched_ext kernel, timed in the guest from /proc/uptime (10 ms
# steps; the client's own exec included).
schedctl() {
    say "schedctl: 5 stops and starts of bpfland on request"
    local p='cs() { read u _ </proc/uptime; echo $(( ${u%.*}${u#*.} )); }; for i in 1 2 3 4 5; do a=$(cs); /init sched stop >/dev/null; b=$(cs); /init sched start >/dev/null; c=$(cs); echo "$(( (b-a)*10 )) $(( (c-b)*10 )) $(cat /sys/kernel/sched_ext/state)"; done'
    "$gi" run --cold --kernel "$sid_kernel" --cpus 2 --memory 512 --scheduler .cache/scx/bin/scx_bpfland \
        -- /bin/busybox sh -c "$p" </dev/null >"$tmp/sc" 2>/dev/null || say "schedctl run failed"
    grep -qv ' enabled$' "$tmp/sc" && say "schedctl: a start did not leave the scheduler enabled"
    echo "scx_bpfland on $(kernel_name sid), 2 vCPUs, cold; 5 requests of each in a row, ms (10 ms steps)."
    echo
    echo "| request | each, ms | median |"
    echo "|---|---|---|"
    echo "| \`/init sched stop\`, request to \`disabled\` | $(awk '{print $1}' "$tmp/sc" | paste -sd, | sed 's/,/, /g') | $(awk '{print $1}' "$tmp/sc" | median) |"
    echo "| \`/init sched start\`, request to attach (\`enabled\`) | $(awk '{print $2}' "$tmp/sc" | paste -sd, | sed 's/,/, /g') | $(awk '{print $2}' "$tmp/sc" | median) |"
}

SECTIONS=(size timeline anchors throughput floors sizes decode modes levers options warm matrix collect schedctl)

# docs/BENCHMARKS.md: the template with each @@SECTION@@ line replaced by
# that section's markdown.
write_doc() {
    local template=docs/BENCHMARKS.in.md out=docs/BENCHMARKS.md
    {
        while IFS= read -r line; do
            if [[ $line =~ ^@@([a-z]+)@@$ ]]; then
                cat "$md/${BASH_REMATCH[1]}.md" 2>/dev/null || echo "(not measured in this run)"
            elif [[ $line == *@@date@@* ]]; then
                echo "${line//@@date@@/$(date -u '+%Y-%m-%d %H:%M UTC')}"
            else
                printf '%s\n' "$line"
            fi
        done <"$template"
    } >"$out"
    say "wrote $out"
}

case "${1:-all}" in
    all)
        for s in "${SECTIONS[@]}"; do
            start=$(date +%s)
            "$s" >"$md/$s.md"
            say "$s took $(($(date +%s) - start)) s"
            # After each section, so an interrupted run leaves what it measured.
            write_doc
        done ;;
    *)
        for s in "$@"; do
            [[ " ${SECTIONS[*]} " == *" $s "* ]] || { echo "usage: $0 [all|${SECTIONS[*]// /|}]..." >&2; exit 2; }
            "$s"
        done ;;
esac
