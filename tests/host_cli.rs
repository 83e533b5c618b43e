//! The built `guestinit` binary, end to end without a VM: `pack` checked by
//! the system's `cpio`, `decode` of a crafted capture, and the exit codes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use guestinit::wire::{encode, encoded_len, Tag, HEADER_LEN};

mod common;

const GUESTINIT: &str = env!("CARGO_BIN_EXE_guestinit");

fn guestinit(args: &[&str]) -> Output {
    Command::new(GUESTINIT).args(args).output().unwrap()
}

fn cpio_list(archive: &Path) -> Vec<String> {
    let out = Command::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(fs::File::open(archive).unwrap())
        .stderr(Stdio::inherit())
        .output()
        .expect("cpio is installed by scripts/setup-tests.sh");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn pack_busybox_lists_with_cpio() {
    let scratch = common::scratch("host-pack");
    let archive = scratch.join("initramfs.cpio");
    let archive_arg = archive.to_str().unwrap();
    let kernel_cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/boot");
    let has_kernel = kernel_cache.is_dir() && std::env::var_os("GUESTINIT_KERNEL").is_none();
    let mut args = vec!["pack", "-o", archive_arg];
    let fake_tree = scratch.join("modules");
    if !has_kernel {
        // No kernel from setup.sh: a tree where the drivers are built in.
        eprintln!("no .cache/kernel: packing against a built-in-only module tree");
        fs::create_dir_all(&fake_tree).unwrap();
        fs::write(
            fake_tree.join("modules.builtin"),
            "kernel/drivers/char/virtio_console.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        args.extend(["--modules", fake_tree.to_str().unwrap()]);
    }
    args.extend(["--", "/bin/busybox", "sh", "-c", "echo hi"]);
    let out = guestinit(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let names = cpio_list(&archive);
    let at = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} not in {names:?}"))
    };
    assert!(at("dev") < at("dev/console"));
    assert!(at("bin") < at("bin/busybox"));
    assert_eq!(at("dev/console") + 1, at("init"));
    assert_eq!(at("init") + 1, at("args"));
    assert_eq!(at("args") + 1, at("bin/busybox"));
    assert_eq!(names.last().unwrap(), ".guestinit-complete");
    let modules: Vec<_> = names.iter().filter(|n| n.starts_with("modules/")).collect();
    if has_kernel {
        assert_eq!(
            modules.first().unwrap().as_str(),
            "modules/000-virtio_ring.ko"
        );
        assert!(modules.iter().any(|m| m.ends_with("-virtio_console.ko")));
        assert!(modules.last().unwrap().ends_with("-virtio_pci.ko"));
    } else {
        assert!(modules.is_empty());
    }

    let args_file = Command::new("cpio")
        .args(["-i", "--quiet", "--to-stdout", "args"])
        .stdin(fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert_eq!(args_file.stdout, b"/bin/busybox\0sh\0-c\0echo hi\0");
}

#[test]
fn pack_errors_exit_249_with_one_line() {
    let scratch = common::scratch("host-pack-err");
    let out_path = scratch.join("x.cpio");
    let out = guestinit(&[
        "pack",
        "-o",
        out_path.to_str().unwrap(),
        "--",
        "no-such-program-guestinit",
    ]);
    assert_eq!(out.status.code(), Some(249));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "guestinit: program `no-such-program-guestinit` not found on PATH\n"
    );
    let out = guestinit(&[
        "pack",
        "-o",
        out_path.to_str().unwrap(),
        "--init",
        "/no/init",
        "--",
        "sh",
    ]);
    assert_eq!(out.status.code(), Some(249));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cargo build --release"));
}

fn frame(tag: Tag, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; encoded_len(payload.len())];
    encode(tag, payload, &mut out).unwrap();
    out
}

#[test]
fn decode_a_crafted_capture() {
    let scratch = common::scratch("host-decode");
    let capture = scratch.join("bulk.log");
    let mut bytes = b"\r\n".to_vec();
    bytes.extend(frame(Tag::SOUT, b"hello\n"));
    let mut bad = frame(Tag::SERR, b"x");
    bad[HEADER_LEN] = b'y';
    bytes.extend(bad);
    bytes.extend(frame(Tag::EXIT, &42i32.to_le_bytes()));
    bytes.extend(&frame(Tag::SOUT, b"cut")[..5]);
    fs::write(&capture, &bytes).unwrap();

    let out = guestinit(&["decode", capture.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "skipped 2 bytes");
    assert_eq!(lines[1], "SOUT 6 \"hello\\n\"");
    assert!(lines[2].starts_with("CRC mismatch: SERR frame of 1 bytes"));
    assert_eq!(lines[4], "EXIT 4 code=42");
    assert_eq!(lines[5], "truncated: 5 bytes at the end complete no frame");

    let out = guestinit(&["decode", "--json", capture.to_str().unwrap()]);
    assert!(out.status.success());
    let json: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json[1]["text"], "hello\n");
    assert_eq!(json[4]["code"], 42);
    assert_eq!(json[5]["event"], "truncated");

    let out = guestinit(&["decode", scratch.join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(249));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("guestinit: cannot read "));
}

/// Peak resident memory of a running process, KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn decode_streams_a_large_capture_in_bounded_memory() {
    const CAPTURE_MIB: u64 = 128;
    let scratch = common::scratch("host-decode-large");
    let capture = scratch.join("bulk.log");
    // Empty SRDY frames: a line of output per 16 bytes, far more than a
    // pipe holds, so the child is alive and blocked while we look at it.
    let block = frame(Tag::SRDY, b"").repeat(64 * 1024);
    let mut file = fs::File::create(&capture).unwrap();
    for _ in 0..CAPTURE_MIB {
        std::io::Write::write_all(&mut file, &block).unwrap();
    }
    drop(file);
    let mut child = Command::new(GUESTINIT)
        .args(["decode", capture.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert_eq!(first, "SRDY 0\n");
    // Reading the whole capture first would have taken 128 MiB by now.
    let peak = peak_rss_kib(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(peak < 16 * 1024, "decode peaked at {peak} KiB");
}

#[test]
fn run_help_documents_the_exit_codes() {
    let out = guestinit(&["run", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for code in ["247", "249", "250", "251", "252", "253", "254"] {
        assert!(
            help.contains(&format!("  {code}  ")),
            "{code} missing from:\n{help}"
        );
    }
    assert!(!help.contains("throttle"), "--throttle-bulk is hidden");
}

/// The lines of `guestinit COMMAND --help`'s "VM options:" section, each
/// an option and its help with the column padding squeezed out.
fn vm_options(command: &str) -> Vec<String> {
    let out = guestinit(&[command, "--help"]);
    assert!(out.status.success(), "{command} --help");
    let help = String::from_utf8(out.stdout).unwrap();
    help.lines()
        .skip_while(|l| *l != "VM options:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn every_command_that_boots_a_vm_takes_the_same_vm_options() {
    let mkdisk = vm_options("mkdisk");
    let names: Vec<_> = mkdisk
        .iter()
        .map(|l| l.split([' ', ',']).find(|w| w.starts_with("--")).unwrap())
        .collect();
    for name in [
        "--kernel",
        "--modules",
        "--init",
        "--memory",
        "--cpus",
        "--topology",
        "--timeout",
        "--append",
        "--hostname",
        "--net",
        "--net-forward",
        "--qemu-arg",
        "--com1-log",
        "--com2-log",
        "--verbose",
    ] {
        assert!(names.contains(&name), "{name} not in mkdisk's {names:?}");
    }
    // run and shell attach data disks too; mkdisk's one disk is its FILE.
    for command in ["run", "shell"] {
        let mut theirs = vm_options(command);
        theirs.retain(|l| !l.starts_with("--disk "));
        assert_eq!(
            theirs, mkdisk,
            "{command}'s VM options differ from mkdisk's"
        );
    }
}

#[test]
fn every_output_path_is_checked_before_the_boot() {
    // A kernel that does not exist: an output path found bad after the
    // boot would be named only once the kernel was; before it, first.
    let options: [&[&str]; 6] = [
        &["--trace"],
        &["--kernel-log"],
        &["--scheduler", "/bin/true", "--sched-log"],
        &["--com1-log"],
        &["--com2-log"],
        &["--bulk-log"],
    ];
    for option in options {
        let mut args = vec!["run"];
        args.extend(option);
        args.extend(["/missing/dir/out.txt", "--kernel", "/nonexistent/vmlinuz"]);
        args.extend(["--", "/bin/true"]);
        let out = guestinit(&args);
        let option = option.join(" ");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(249), "{option}: {stderr}");
        assert!(
            stderr.contains("cannot write /missing/dir/out.txt"),
            "{option}: {stderr}"
        );
    }
}

#[test]
fn a_live_stats_socket_is_refused_before_the_boot_and_kept() {
    // Another run's socket (here the test's own listener) at the path.
    let dir = std::env::temp_dir().join(format!("guestinit-live-stats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stats.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let socket = path.to_str().unwrap();
    // A usage error (249) before the kernel is looked for: its stderr.
    let refused = |socket: &str| {
        let out = guestinit(&[
            "run",
            "--stats-socket",
            socket,
            "--kernel",
            "/nonexistent/vmlinuz",
            "--",
            "/bin/true",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(249), "{stderr}");
        stderr
    };
    let stderr = refused(socket);
    assert!(
        stderr.contains(&format!("--stats-socket {socket}: a live socket is there")),
        "{stderr}"
    );
    assert!(path.exists(), "the live socket was left alone");
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    drop(listener);
    // A missing folder: the same, before the kernel is looked for.
    let stderr = refused("/missing/dir/stats.sock");
    assert!(
        stderr.contains("cannot write /missing/dir/stats.sock"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
