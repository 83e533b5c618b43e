//! `--collect GUEST_DIR[:HOST_DIR]`, `--collect-max` and `--collect-cores`:
//! files the payload leaves come back to the host after it ends, byte for
//! byte with their modes, mtimes and links; what is not sent is one
//! warning naming it, and the run's exit code is kept. Boots the Debian 12
//! kernel under QEMU (tests/common); never skipped.

mod common;

use common::{code, run, scratch, stderr};
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_tree_comes_back_byte_exact_with_modes_mtimes_and_links() {
    let dir = scratch("collect-tree");
    let out = dir.join("out");
    let spec = format!("/tmp/res:{}", out.display());
    let script = r#"
        set -e
        mkdir -p /tmp/res/sub
        dd if=/dev/urandom of=/tmp/res/sub/big bs=1000000 count=20 2>/dev/null
        sha256sum /tmp/res/sub/big
        printf 'spaced\n' > "/tmp/res/a b
c"
        echo x > /tmp/res/ro
        chmod 0604 /tmp/res/ro
        touch -d '2021-02-03 04:05:06' /tmp/res/ro
        chmod 0750 /tmp/res/sub
        ln -s 'a b
c' /tmp/res/link
        mkfifo /tmp/res/fifo
        exit 3
    "#;
    let got = run(&["--collect", &spec], &["/bin/busybox", "sh", "-c", script]);
    let text = stderr(&got);
    assert_eq!(code(&got), 3, "the payload's code is kept");
    let big = std::fs::read(out.join("sub/big")).expect("the 20 MB file came back");
    assert_eq!(big.len(), 20_000_000);
    let guest_sum = String::from_utf8_lossy(&got.stdout);
    assert!(
        guest_sum.starts_with(&sha256_hex(&big)),
        "the guest's sum {guest_sum} is the host's"
    );
    assert_eq!(std::fs::read(out.join("a b\nc")).unwrap(), b"spaced\n");
    let ro = std::fs::metadata(out.join("ro")).unwrap();
    assert_eq!(ro.mode() & 0o7777, 0o604);
    // 2021-02-03 04:05:06 UTC, the guest's clock being UTC.
    assert_eq!(ro.mtime(), 1_612_325_106);
    assert_eq!(
        std::fs::metadata(out.join("sub")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("a b\nc")
    );
    assert!(!out.join("fifo").exists());
    let fifo_lines: Vec<_> = text
        .lines()
        .filter(|l| l.contains("/tmp/res/fifo"))
        .collect();
    assert_eq!(fifo_lines.len(), 1, "one warning: {text}");
    assert!(fifo_lines[0].contains("FIFO: not sent"), "{text}");
    assert!(
        std::fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".guestinit-part")),
        "no temporary file is left"
    );
}

#[test]
fn a_missing_dir_and_the_bound_are_warned_of_and_the_code_kept() {
    let dir = scratch("collect-bounds");
    let out = dir.join("out");
    let spec = format!("/tmp/res:{}", out.display());
    let script =
        "mkdir /tmp/res && dd if=/dev/zero of=/tmp/res/huge bs=1024 count=2048 2>/dev/null \
                  && echo small > /tmp/res/small; exit 5";
    let got = run(
        &[
            "--collect",
            &spec,
            "--collect",
            "/no/such:x",
            "--collect-max",
            "1M",
        ],
        &["/bin/busybox", "sh", "-c", script],
    );
    let text = stderr(&got);
    assert_eq!(code(&got), 5, "the payload's code is kept");
    assert!(
        text.contains("collect /no/such: no such directory"),
        "{text}"
    );
    let over: Vec<_> = text
        .lines()
        .filter(|l| l.contains("/tmp/res/huge"))
        .collect();
    assert_eq!(over.len(), 1, "{text}");
    assert!(
        over[0].contains("--collect-max") && over[0].contains("not sent"),
        "{text}"
    );
    assert!(!out.join("huge").exists());
    assert_eq!(
        std::fs::read(out.join("small")).unwrap(),
        b"small\n",
        "what fits still comes"
    );
}

/// A static program that dies of a real fault (a write through NULL).
fn segv_program(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("segv.c");
    std::fs::write(
        &src,
        "int main(void) { *(volatile int *)0 = 1; return 0; }\n",
    )
    .unwrap();
    let bin = dir.join("segv");
    let built = std::process::Command::new("cc")
        .args(["-static", "-O0", "-o"])
        .arg(&bin)
        .arg(&src)
        .status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "cc -static failed: run scripts/setup-tests.sh (gcc, libc6-dev)"
    );
    bin
}

#[test]
fn a_crash_dumps_a_core_that_comes_back_and_is_named() {
    let dir = scratch("collect-cores");
    let cores = dir.join("cores");
    let program = segv_program(&dir);
    let got = run(
        &["--collect-cores", cores.to_str().unwrap()],
        &[program.to_str().unwrap()],
    );
    let text = stderr(&got);
    assert_eq!(code(&got), 128 + 11, "the signal death's code is kept");
    assert!(text.contains("killed by SIGSEGV (core dumped)"), "{text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("guestinit: its core file: "))
        .unwrap_or_else(|| panic!("no core file named: {text}"));
    let core = Path::new(line);
    assert!(core.starts_with(&cores), "{line}");
    assert!(
        core.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("core.segv."),
        "{line}"
    );
    let readelf = |flag: &str| {
        let out = std::process::Command::new("readelf")
            .arg(flag)
            .arg(core)
            .output()
            .expect("readelf (binutils): run scripts/setup-tests.sh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        readelf("-h").contains("CORE (Core file)"),
        "{}",
        readelf("-h")
    );
    let notes = readelf("-n");
    assert!(
        notes.contains("NT_PRSTATUS") && notes.contains("NT_SIGINFO"),
        "{notes}"
    );
    // NT_PRPSINFO's pr_fname: the core is the program's.
    let bytes = std::fs::read(core).unwrap();
    assert!(
        bytes.windows(5).any(|w| w == b"segv\0"),
        "the core names segv"
    );
}

/// Runs `program` with `args` on the host; its stdout, or a failure naming it.
fn host_tool(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}: run scripts/setup-tests.sh (clang-19, llvm-19, libclang-rt-19-dev)"));
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn coverage_counted_in_the_guest_is_merged_and_reported_on_the_host() {
    let dir = scratch("collect-coverage");
    let src = dir.join("cov.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n\
         static int twice(int x) { return 2 * x; }\n\
         static int never(int x) { return x - 1; }\n\
         int main(int argc, char **argv) {\n\
             int n = 0;\n\
             for (int i = 0; i < 3; i++) n += twice(i);\n\
             if (argc > 5) n = never(n);\n\
             printf(\"%d\\n\", n);\n\
             return 0;\n\
         }\n",
    )
    .unwrap();
    let bin = dir.join("cov");
    let flags = [
        "-static",
        "-O0",
        "-fprofile-instr-generate",
        "-fcoverage-mapping",
        "-o",
    ];
    let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(std::ffi::OsStr::new).collect();
    args.extend([bin.as_os_str(), src.as_os_str()]);
    host_tool("clang-19", &args);
    let prof = dir.join("prof");
    let spec = format!("/tmp/prof:{}", prof.display());
    let got = run(
        &[
            "--env",
            "LLVM_PROFILE_FILE=/tmp/prof/cov-%p.profraw",
            "--collect",
            &spec,
        ],
        &[bin.to_str().unwrap()],
    );
    assert_eq!(code(&got), 0, "{}", stderr(&got));
    assert_eq!(String::from_utf8_lossy(&got.stdout), "6\n");
    let raws: Vec<_> = std::fs::read_dir(&prof)
        .expect("the profile came back")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(raws.len(), 1, "{raws:?}");
    let merged = dir.join("cov.profdata");
    host_tool(
        "llvm-profdata-19",
        &[
            "merge".as_ref(),
            "-o".as_ref(),
            merged.as_os_str(),
            raws[0].as_os_str(),
        ],
    );
    let profile = format!("-instr-profile={}", merged.display());
    let summary = host_tool(
        "llvm-cov-19",
        &[
            "export".as_ref(),
            "-format=text".as_ref(),
            "-summary-only".as_ref(),
            bin.as_os_str(),
            profile.as_ref(),
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let totals = &json["data"][0]["totals"];
    // All lines but `never`'s body ran in the guest; `never` did not.
    assert_eq!(totals["lines"]["count"], 9, "{totals}");
    assert_eq!(totals["lines"]["covered"], 8, "{totals}");
    assert_eq!(totals["functions"]["covered"], 2, "{totals}");
    let report = host_tool(
        "llvm-cov-19",
        &["report".as_ref(), bin.as_os_str(), profile.as_ref()],
    );
    assert!(report.contains("88.89%"), "{report}");
}
