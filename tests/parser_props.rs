//! The parsers' fuzz properties (tests/props/parsers.rs) as property tests,
//! so that stable `cargo test` runs them; plus a replay of the fuzz corpus
//! seeds and of every crash the fuzzing kept as a regression.

mod common;
#[path = "props/parsers.rs"]
mod props;
#[path = "props/replay.rs"]
mod replay;

use proptest::prelude::*;

/// Bytes drawn mostly from `alphabet`, with some arbitrary ones.
fn text(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![9 => prop::sample::select(alphabet), 1 => any::<u8>()];
    prop::collection::vec(byte, 0..max)
}

/// Lines built from `pieces`, joined by newlines.
fn lines_of(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<u8>> {
    let line = prop::collection::vec(prop::sample::select(pieces), 0..8)
        .prop_map(|p| p.concat().into_bytes());
    prop::collection::vec(line, 0..max).prop_map(|l| l.join(&b'\n'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn cmdline(line in text(b"ab=\" -\t\n\0\xa0", 80)) {
        props::cmdline(&line);
    }

    #[test]
    fn args(file in text(b"a/ \n\0", 60)) {
        props::args(&file);
    }

    #[test]
    fn args_roundtrip(argv in prop::collection::vec(text(b"a/ \n\0", 12), 0..8)) {
        props::args_roundtrip(&argv);
    }

    #[test]
    fn sched_script(script in lines_of(
        &["echo", " ", "\t", "1", "-n", "'", "\"", ">", "/sys/x", "x", "#", "$", "\r", ";"],
        6,
    )) {
        props::sched_script(&script);
    }

    #[test]
    fn kallsyms(file in lines_of(
        &["ffffffff81000000", "0", " ", "T", "t", "?", "_text", "\t", "[", "virtio", "]", "x"],
        6,
    )) {
        props::kallsyms(&file);
    }

    #[test]
    fn iomem(file in lines_of(
        &["  ", " ", "00000000", "0fff", "-", " : ", ":", "System RAM", "f", "10000000000000000"],
        6,
    )) {
        props::iomem(&file);
    }

    #[test]
    fn num(s in text(b"0123456789abcdefABCDEFgx+- ", 24)) {
        props::num(&s);
    }

    #[test]
    fn lines(
        stop_after in prop::option::of(0u8..12),
        cuts in prop::collection::vec(0u16..40, 0..16),
        stream in text(b"ab\n", 300),
    ) {
        props::lines(&props::LinesInput { stop_after, cuts, stream });
    }
}

/// An image of `len` noise bytes with some of the magics written in (the
/// FAT ones together with or without the boot signature).
fn disk_image() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: [(usize, &[u8]); 6] = [
        (0, b"XFSB"),
        (0x10040, b"_BHRfS_M"),
        (1080, &[0x53, 0xEF]),
        (82, b"FAT32   "),
        (54, b"FAT16   "),
        (510, &[0x55, 0xAA]),
    ];
    (
        0usize..0x10050,
        any::<u8>(),
        prop::collection::vec(any::<bool>(), 6),
    )
        .prop_map(|(len, noise, chosen)| {
            let mut image: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(noise)).collect();
            for ((offset, magic), yes) in PIECES.iter().zip(chosen) {
                if yes && offset + magic.len() <= len {
                    image[*offset..offset + magic.len()].copy_from_slice(magic);
                }
            }
            image
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn superblock(image in disk_image()) {
        props::superblock(&image);
    }
}

/// A bzImage or an ELF with a PVH note, built by the tests' own encoder,
/// then a few bytes overwritten: deep in both parsers, and malformed.
fn kernel_image_input() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![Just(props::sample_bzimage()), Just(props::sample_pvh_elf())];
    (
        base,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        0usize..64,
    )
        .prop_map(|(mut image, edits, cut)| {
            for (at, byte) in edits {
                let i = at.index(image.len());
                image[i] = byte;
            }
            image.truncate(image.len() - cut.min(image.len()));
            image
        })
}

#[test]
fn the_kernel_image_samples_reach_both_parsers_ends() {
    use guestinit::parse::kernel_image::{build_id, payload, pvh_entry, Codec};
    let image = props::sample_bzimage();
    let found = payload(&image).unwrap();
    assert_eq!(
        (found.codec, found.data, found.size),
        (Codec::Lz4Legacy, &b"\x02\x21\x4c\x18four"[..], 1000)
    );
    assert_eq!(pvh_entry(&props::sample_pvh_elf()), Some(0x100_4000));
    assert_eq!(build_id(&props::sample_pvh_elf()), Some(&[0xb1; 20][..]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn kernel_image(image in kernel_image_input()) {
        props::kernel_image(&image);
    }
}

/// A share the host can write: a tag of 1 to 36 bytes and an absolute
/// directory, neither with a NUL.
fn share_record() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, bool)> {
    let no_nul = |alphabet, max| {
        text(alphabet, max)
            .prop_map(|t: Vec<u8>| t.into_iter().filter(|&b| b != 0).collect::<Vec<u8>>())
    };
    let tag = no_nul(b"share0,:", guestinit::parse::shares::TAG_MAX)
        .prop_filter("a tag has a byte", |t| !t.is_empty());
    let dir = no_nul(b"/ab ,:\n", 40).prop_map(|d| [&b"/"[..], &d].concat());
    (tag, dir, any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn shares(file in text(b"/a\0rwo", 40)) {
        props::shares(&file);
    }

    #[test]
    fn shares_round_trip(shares in prop::collection::vec(share_record(), 0..6)) {
        props::shares_round_trip(&shares);
    }
}

#[test]
fn fuzz_corpus_seeds_and_regressions_replay() {
    replay::all(
        &[
            "cmdline",
            "args",
            "sched_script",
            "kallsyms",
            "iomem",
            "lines",
            "num",
            "superblock",
            "shares",
            "kernel_image",
        ],
        props::replay,
    );
}

/// An `echo` line: value (bare, or in either quote), blanks, `>`, a path.
fn echo_line() -> impl Strategy<Value = Vec<u8>> {
    let value = text(b"a1-n#*\\$'\" ", 6);
    let quote = prop::sample::select(&["", "'", "\""][..]);
    let blank = prop::sample::select(&["", " ", "\t"][..]);
    let glued = prop::sample::select(&["", "", "z"][..]);
    let tail = prop::sample::select(&["", " ", " # note", " x"][..]);
    let blanks = (blank.clone(), blank.clone(), blank);
    (quote, value, glued, blanks, tail).prop_map(|(q, v, g, (b1, b2, b3), t)| {
        let mut line = format!("echo {q}").into_bytes();
        line.extend(v.into_iter().filter(|&b| b != 0 && b != b'\n'));
        line.extend(format!("{q}{g}{b1}>{b2}/out{b3}{t}").bytes());
        line
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What the init writes for a line it accepts is what `sh` writes: the
    /// value and a newline (the path moved to a scratch file).
    #[test]
    fn sched_script_writes_what_sh_writes(line in echo_line()) {
        use std::os::unix::ffi::OsStrExt;
        use guestinit::parse::sched_script::parse_line;

        let Ok(Some(w)) = parse_line(&line) else {
            return Ok(());
        };
        let dir = common::scratch(&format!("sched-script-{}", std::process::id()));
        let out = dir.join("out");
        let _ = std::fs::remove_file(&out);
        let at = w.path.as_ptr() as usize - line.as_ptr() as usize;
        let script = [&line[..at], out.as_os_str().as_bytes(), &line[at + w.path.len()..]].concat();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(std::ffi::OsStr::from_bytes(&script))
            .status()
            .unwrap();
        prop_assert!(status.success());
        let written = std::fs::read(&out).unwrap();
        prop_assert_eq!(written, [w.value, b"\n"].concat());
    }
}

#[path = "props/modinfo.rs"]
mod modinfo_props;

proptest! {
    #[test]
    fn modinfo(section in text(b"ab=,\0depns", 80)) { modinfo_props::modinfo(&section); }
}

#[test]
fn modinfo_seeds_replay() {
    replay::all(&["modinfo"], |_, d| {
        modinfo_props::modinfo(d);
        true
    });
}

#[path = "props/boot.rs"]
mod boot_props;

use guestinit::parse::superblock::Fs;
use guestinit::proto::boot::{BootParams, Crash, Disks, Mode};
use guestinit::proto::net::Hostname;

/// Any host name the contract allows: 1 to 64 of its bytes (leaked: a
/// `BootParams` borrows its name, and a case's few bytes may stay).
fn hostname() -> impl Strategy<Value = Hostname<'static>> {
    let allowed: Vec<u8> = (b'0'..=b'9')
        .chain(b'a'..=b'z')
        .chain(b'A'..=b'Z')
        .chain([b'-', b'.'])
        .collect();
    prop::collection::vec(prop::sample::select(allowed), 1..=64)
        .prop_map(|name| Hostname::new(name.leak()).expect("only allowed bytes"))
}

fn boot_params() -> impl Strategy<Value = BootParams<'static>> {
    let fs = prop::option::of(prop::sample::select(
        &[Fs::Ext, Fs::Btrfs, Fs::Xfs, Fs::Vfat][..],
    ));
    let mode = prop_oneof![
        Just(Mode::Test),
        Just(Mode::Exec),
        Just(Mode::Shell),
        fs.prop_map(Mode::Mkdisk),
    ];
    let crash = prop::option::of(prop::sample::select(&[Crash::Panic, Crash::Segv][..]));
    let number = || prop::option::of(prop_oneof![any::<u64>(), 0u64..100]);
    (
        any::<[bool; 5]>(),
        (number(), number(), number()),
        mode,
        prop::collection::vec(any::<bool>(), 0..=guestinit::proto::disk::MAX),
        crash,
        prop::option::of(hostname()),
    )
        .prop_map(
            |(
                [ack, stdin, stats, net, handover],
                (pob, attach_timeout_s, trace_kb),
                mode,
                access,
                crash,
                hostname,
            )| {
                let mut disks = Disks::default();
                for read_only in access {
                    disks.push(read_only).unwrap();
                }
                BootParams {
                    ack,
                    stdin,
                    stats,
                    net,
                    pob,
                    attach_timeout_s,
                    trace_kb,
                    mode,
                    disks,
                    crash,
                    hostname,
                    handover,
                }
            },
        )
}

/// A whole kernel parameter that is not the init's: `key`, `key=value`,
/// `key="a value"` or `"key=a value"`, as the kernel's own and a user's are.
fn unrelated_param() -> impl Strategy<Value = String> {
    let chars = |set: &'static str, len: std::ops::Range<usize>| {
        prop::collection::vec(prop::sample::select(set.chars().collect::<Vec<_>>()), len)
            .prop_map(String::from_iter)
    };
    let key = chars("abcdgimnostu0123456789_.-", 1..14)
        .prop_filter("the init's keys are not unrelated", |k| {
            k != "--" && !boot_props::KEYS.contains(&k.as_str())
        });
    let plain = chars("abcrw019,=/.:-_", 0..10);
    let spaced = chars("ab -=,\t", 0..10);
    prop_oneof![
        key.clone(),
        (key.clone(), plain).prop_map(|(k, v)| format!("{k}={v}")),
        (key.clone(), spaced.clone()).prop_map(|(k, v)| format!("{k}=\"{v}\"")),
        (key, spaced).prop_map(|(k, v)| format!("\"{k}={v}\"")),
        // Prefixed like the init's keys, but none of them.
        chars("xyz", 1..4).prop_map(|s| format!("guestinit.{s}=1")),
    ]
}

/// Command lines made of the contract's own words, so that the parse's
/// every branch is reached.
fn boot_words() -> impl Strategy<Value = Vec<u8>> {
    let words: Vec<&'static str> = boot_props::KEYS
        .iter()
        .copied()
        .chain([
            " ", " ", "=", "\"", "--", "shell", "exec", "mkdisk", "test", "ext4", "btrfs", "xfs",
            "vfat", "ntfs", "rw", "ro", ",", "panic", "segv", "1a", "30", "x", "\0", "vm-1.a", "_",
        ])
        .collect();
    prop::collection::vec(prop::sample::select(words), 0..24).prop_map(|w| w.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn boot_params_round_trip(
        params in boot_params(),
        before in prop::collection::vec(unrelated_param(), 0..5),
        after in prop::collection::vec(unrelated_param(), 0..5),
    ) {
        boot_props::round_trip(&params, &before, &after);
    }

    #[test]
    fn boot_params_the_later_wins(host in boot_params(), user in boot_params()) {
        boot_props::later_wins(&host, &user);
    }

    #[test]
    fn boot_params_parse_any_line(line in prop_oneof![boot_words(), text(b"guestinit.mode=shell ,\"\0", 60)]) {
        boot_props::parse_any(&line);
    }
}

#[test]
fn boot_params_seeds_replay() {
    replay::all(&["boot_params"], boot_props::replay);
}

#[path = "props/newc.rs"]
mod newc_props;

use guestinit::parse::newc::NAME_MAX;

/// An entry, mostly one a reader takes: a plain name (at times exactly
/// as long as allowed), or one too long, empty, with a NUL, the trailer's.
fn newc_entry() -> impl Strategy<Value = newc_props::Entry> {
    let mode = prop_oneof![
        prop::sample::select(&[0o100_644u32, 0o040_755, 0o120_777, 0o020_600, 0o010_644][..]),
        any::<u32>(),
    ];
    let name = prop_oneof![
        12 => text(b"ab/.", 12).prop_filter("a name has a byte", |n| !n.is_empty() && !n.contains(&0)),
        1 => Just(vec![b'x'; NAME_MAX - 1]),
        1 => Just(vec![b'x'; NAME_MAX]),
        1 => text(b"a\0", 4),
        1 => Just(b"TRAILER!!!".to_vec()),
    ];
    let data = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..12),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ];
    (mode, any::<u32>(), any::<u32>(), name, data).prop_map(|(mode, uid, mtime, name, data)| {
        newc_props::Entry {
            mode,
            uid,
            mtime,
            name,
            data,
        }
    })
}

/// Archives of such entries, mostly whole: at times edited, cut short, or
/// followed by something other than zeros.
fn newc_input() -> impl Strategy<Value = newc_props::NewcInput> {
    let edits = prop_oneof![
        3 => Just(vec![]),
        1 => prop::collection::vec((any::<u16>(), prop::sample::select(&b"07\0 gA"[..])), 1..3),
    ];
    let tail = prop_oneof![
        3 => prop::collection::vec(Just(0u8), 0..9),
        1 => text(b"\x00070701TRAILER!", 140),
    ];
    (
        prop::collection::vec(newc_entry(), 0..5),
        prop::bool::weighted(0.9),
        edits,
        tail,
        prop::collection::vec(0u16..200, 0..8),
        prop::option::of(0u8..10),
    )
        .prop_map(
            |(entries, trailer, edits, tail, cuts, stop_after)| newc_props::NewcInput {
                entries,
                trailer,
                edits,
                tail,
                cuts,
                stop_after,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn newc(input in newc_input()) {
        newc_props::newc(&input);
    }

    /// Bytes alone (no entry written): the model's, however they are cut.
    #[test]
    fn newc_any_bytes(
        tail in text(b"070701TRAILER!\0", 400),
        cuts in prop::collection::vec(0u16..120, 0..8),
    ) {
        let input = newc_props::NewcInput {
            entries: vec![],
            trailer: false,
            edits: vec![],
            tail,
            cuts,
            stop_after: None,
        };
        newc_props::newc(&input);
    }

    /// What the host's writer (the `cpio` crate, which `pack` uses) writes
    /// reads back as its entries.
    #[test]
    fn newc_reads_the_cpio_crates_archives(entries in prop::collection::vec(newc_entry(), 0..6)) {
        use std::io::Write;
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| e.is_valid())
            .map(|e| newc_props::Entry { name: e.name.iter().map(|&b| b % 26 + b'a').collect(), ..e })
            .collect();
        let mut archive = Vec::new();
        for e in &entries {
            let h = e.header();
            let name = std::str::from_utf8(&e.name).unwrap();
            let mut w = cpio::newc::Builder::new(name)
                .mode(h.mode)
                .uid(h.uid)
                .gid(h.gid)
                .nlink(h.nlink)
                .mtime(h.mtime)
                .rdev_major(h.rdev_major)
                .rdev_minor(h.rdev_minor)
                .write(&mut archive, h.filesize);
            w.write_all(&e.data).unwrap();
            w.finish().unwrap();
        }
        cpio::newc::trailer(&mut archive).unwrap();
        let mut ours = Vec::new();
        for e in &entries {
            e.write(&mut ours);
        }
        newc_props::trailer(&mut ours);
        // The same calls as for the tests' writer's archive of them.
        prop_assert_eq!(newc_props::model(&archive), newc_props::model(&ours));
        let (ours, cpios) = (newc_props::NewcInput {
            entries,
            trailer: true,
            edits: vec![],
            tail: vec![],
            cuts: vec![3, 110, 1],
            stop_after: None,
        }, archive);
        // The reader agrees with the model on the crate's archive, and
        // reads ours as its entries.
        newc_props::newc(&newc_props::NewcInput { entries: vec![], trailer: false, tail: cpios, ..ours.clone() });
        newc_props::newc(&ours);
    }
}

#[test]
fn newc_seeds_replay() {
    replay::all(&["newc"], newc_props::replay);
}

#[path = "props/kmsg.rs"]
mod kmsg_props;

/// /dev/kmsg reads: records whose texts are drawn from the splats' words.
fn kmsg_reads() -> impl Strategy<Value = Vec<u8>> {
    let head = prop_oneof![Just("4,"), Just("12,"), Just("0,"), Just("x,")];
    let words = prop::sample::select(
        &[
            "WARNING: CPU: 0 PID: 1 at x",
            "WARNING: possible recursive locking detected",
            "BUG: KASAN: oob",
            "BUG: x",
            "Oops: 0000 [#1] SMP",
            "---[ end trace 0 ]---",
            "====================",
            "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:",
            "Call Trace:",
            "line",
            "\n SUBSYSTEM=x",
            ";",
        ][..],
    );
    let one = (
        head,
        0u64..50,
        prop::collection::vec(words, 0..3),
        text(b"a;,\n", 20),
    )
        .prop_map(|(h, seq, words, tail)| {
            let mut r = format!("{h}{seq},{seq}0,-;{}", words.concat()).into_bytes();
            r.extend(tail);
            r
        });
    prop::collection::vec(one, 0..40).prop_map(|rs| rs.join(&0u8))
}

proptest! {
    #[test]
    fn kmsg(data in kmsg_reads()) { kmsg_props::kmsg(&data); }

    #[test]
    fn kmsg_any_bytes(data in text(b"0,;-\n=W", 400)) { kmsg_props::kmsg(&data); }

    #[test]
    fn kmsg_record_round_trip(
        pri in any::<u32>(), seq in any::<u64>(), ts in any::<u64>(),
        text in text(b"a;, =\\", 60).prop_filter("one line", |t| !t.contains(&b'\n')),
        dict in text(b" A=\n", 20),
    ) {
        kmsg_props::record_round_trip(pri, seq, ts, &text, &dict);
    }
}

#[test]
fn kmsg_seeds_replay() {
    replay::all(&["kmsg"], |_, d| {
        kmsg_props::kmsg(d);
        true
    });
}
