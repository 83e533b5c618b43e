//! The end-to-end path in a real VM: output, exit codes, exec failures,
//! bulk output, and the saved frame stream.

mod common;
use common::*;

#[test]
fn stdout_and_stderr_arrive_separately_and_in_order() {
    let out = sh(&[], "for i in 1 2 3; do echo out$i; echo err$i >&2; done");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "out1\nout2\nout3\n");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("err")).collect();
    assert_eq!(lines, ["err1", "err2", "err3"]);
}

#[test]
fn exit_codes_pass_through() {
    for expected in [0, 3, 255] {
        let out = sh(&[], &format!("exit {expected}"));
        assert_eq!(code(&out), expected, "{}", stderr(&out));
    }
}

#[test]
fn a_signal_death_reports_128_plus_the_signal() {
    let out = sh(&[], "kill -KILL $$");
    assert_eq!(code(&out), 128 + 9, "{}", stderr(&out));
}

/// Appends an archive with a new `/args` (later entries win when the kernel
/// unpacks concatenated archives) so the init is asked to run `program`.
fn run_with_args(name: &str, args: &str, extra: &str) -> std::process::Output {
    let dir = scratch(name);
    let initramfs = dir.join("initramfs.cpio");
    pack(&initramfs, &["/bin/busybox", "true"]);
    std::fs::create_dir_all(dir.join("over")).unwrap();
    std::fs::write(dir.join("over/args"), args).unwrap();
    std::fs::write(dir.join("over/.guestinit-complete"), "").unwrap();
    host_sh(
        &format!("cd over && {extra} printf 'args\\n.guestinit-complete\\n' | cpio -o -H newc --quiet >> ../initramfs.cpio"),
        &dir,
    );
    run(&["--initramfs", initramfs.to_str().unwrap()], &[])
}

#[test]
fn a_missing_program_gives_127_and_the_reason() {
    let out = run_with_args("missing", "/bin/nope\n", "");
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exec /bin/nope: No such file or directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_program_that_is_not_executable_gives_126() {
    let out = run_with_args("noexec", "/args\n", "");
    assert_eq!(code(&out), 126, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exec /args: Permission denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ten_megabytes_written_right_before_exit_all_arrive() {
    // 1..=1_300_000, one per line: 9.3 MB the test can recompute.
    let out = sh(&[], "seq 1 1300000; exit 7");
    assert_eq!(
        code(&out),
        7,
        "{}",
        &stderr(&out)[..stderr(&out).len().min(2000)]
    );
    let expected: String = (1..=1_300_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out.stdout.len(), expected.len(), "byte count");
    assert_eq!(
        crc32fast::hash(&out.stdout),
        crc32fast::hash(expected.as_bytes()),
        "checksum"
    );
}

#[test]
fn decode_reads_a_saved_stream_back() {
    let dir = scratch("decode");
    let log = dir.join("bulk.bin");
    let out = sh(&["--bulk-log", log.to_str().unwrap()], "echo saved; exit 5");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let decoded = std::process::Command::new(guestinit())
        .arg("decode")
        .arg(&log)
        .output()
        .unwrap();
    assert!(decoded.status.success());
    let text = String::from_utf8_lossy(&decoded.stdout);
    for tag in [
        "KADR", "SRDY", "SCST", "SOUT", "SCPP", "TIME", "WAIT", "EXIT",
    ] {
        assert!(text.contains(tag), "{tag} missing from:\n{text}");
    }
    assert!(text.contains("saved"), "{text}");
    let json = std::process::Command::new(guestinit())
        .args(["decode", "--json"])
        .arg(&log)
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(
        json.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{json}"
    );
}

#[test]
fn the_timeline_is_reported_in_order() {
    let out = sh(&["--timeline"], "true");
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    let at = |mark: &str| {
        err.find(mark)
            .unwrap_or_else(|| panic!("{mark} missing:\n{err}"))
    };
    assert!(at("init entry") < at("system ready"));
    assert!(at("system ready") < at("payload start"));
    assert!(at("payload start") < at("payload exit"));
}

#[test]
fn a_dynamic_program_runs_with_its_libraries() {
    // /bin/echo from coreutils: the loader and libc are packed with it.
    let out = run(&[], &["/bin/echo", "dynamic", "payload"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "dynamic payload\n");
}

#[test]
fn the_hosts_stdin_reaches_the_payload_with_its_eof() {
    let input: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let out = run_with_stdin(
        &["/bin/busybox", "sh", "-c", "busybox md5sum; echo done"],
        input.clone(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let digest = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&input)?;
            c.wait_with_output()
        })
        .unwrap();
    let host_sum = String::from_utf8_lossy(&digest.stdout);
    let host_sum = host_sum.split_whitespace().next().unwrap();
    assert_eq!(stdout(&out), format!("{host_sum}  -\ndone\n"));
}

#[test]
fn a_payload_that_never_reads_its_stdin_still_ends() {
    // Far more than any pipe holds: the host's copy blocks, the run does not.
    let out = run_with_stdin(&["/bin/busybox", "true"], vec![b'x'; 4 << 20]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// KADR's (page_offset_base, _text) in a saved bulk stream.
fn kadr(bulk_log: &std::path::Path) -> (u64, u64) {
    let out = std::process::Command::new(guestinit())
        .arg("decode")
        .arg("--json")
        .arg(bulk_log)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("\"tag\":\"KADR\""))
        .unwrap_or_else(|| panic!("no KADR in\n{text}"));
    let field = |name: &str| -> u64 {
        let at = line.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    (field("page_offset_base"), field("text_addr"))
}

#[test]
fn kadr_takes_page_offset_base_from_the_hosts_offset_instead_of_a_scan() {
    // Debian's System.map is a stub and this cache is empty, so the host
    // passes no offset: the guest scans kallsyms. Given an offset, it reads
    // only `_text` and adds it: one a page off from the scan's shows that no
    // scan happened.
    let dir = scratch("kadr-offset");
    let scanned = dir.join("scanned.bulk");
    let out = run_cached(
        &dir.join("cache-1"),
        &["--bulk-log", scanned.to_str().unwrap()],
        &["/bin/busybox", "true"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (pob, text) = kadr(&scanned);
    assert!(pob > text && text != 0, "{pob:#x} {text:#x}");
    let offset = pob - text + 0x1000;
    let given = dir.join("given.bulk");
    let key = format!("guestinit.pob={offset:x}");
    let out = run_cached(
        &dir.join("cache-2"),
        &["--bulk-log", given.to_str().unwrap(), "--append", &key],
        &["/bin/busybox", "true"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (pob2, text2) = kadr(&given);
    assert_eq!(pob2 - text2, offset, "{pob2:#x} {text2:#x}");
}

#[test]
fn the_offset_a_scan_found_is_passed_to_the_next_boot_of_the_kernel() {
    let dir = scratch("kadr-cache");
    let cache = dir.join("cache");
    let first = dir.join("first.bulk");
    let out = run_cached(
        &cache,
        &["-v", "--bulk-log", first.to_str().unwrap()],
        &["/bin/busybox", "true"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("guestinit.pob="), "{}", stderr(&out));
    let (pob, text) = kadr(&first);
    let second = dir.join("second.bulk");
    let out = run_cached(
        &cache,
        &["-v", "--bulk-log", second.to_str().unwrap()],
        &["/bin/busybox", "true"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let key = format!("guestinit.pob={:x} ", pob - text);
    assert!(stderr(&out).contains(&key), "{key} in {}", stderr(&out));
    let (pob2, text2) = kadr(&second);
    assert_eq!(pob2 - text2, pob - text, "{pob2:#x} {text2:#x}");
}

#[test]
fn the_payload_cannot_open_the_stdin_port_behind_the_inits_back() {
    // After its stdin's EOF the payload tries the stdin port's device: a
    // virtio port has one opener, the init, which keeps it to the end.
    let out = run_with_stdin(
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "cat >/dev/null; for p in /sys/class/virtio-ports/*; do \
             [ \"$(cat $p/name)\" = guestinit.stdin ] && dev=/dev/${p##*/}; done; \
             echo into-the-port > $dev && echo wrote; echo done",
        ],
        b"input\n".to_vec(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "done\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Device or resource busy"),
        "{}",
        stderr(&out)
    );
}
