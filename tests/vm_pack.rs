//! What `pack` puts in the archive, proven by running it in a VM: arguments
//! of any bytes but NUL, programs from directories the guest mounts over,
//! `#!/usr/bin/env X` scripts, and kernels that need no modules.

mod common;
use common::*;

use std::fs;
use std::path::{Path, PathBuf};

/// A fresh directory under /tmp, which the guest hides under its tmpfs.
fn host_tmp(name: &str) -> PathBuf {
    let dir = Path::new("/tmp").join(format!("guestinit-vm-pack-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn arguments_with_newlines_arrive_intact() {
    let out = run(
        &[],
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "echo a\necho b; printf '[%s]' \"$1\"",
            "sh",
            "two\nlines\n",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\nb\n[two\nlines\n]");
}

#[test]
fn programs_under_tmp_run_with_argv0_as_given() {
    let dir = host_tmp("tmp");
    // busybox picks its applet from the name in argv[0].
    fs::copy("/bin/busybox", dir.join("echo")).unwrap();
    let script = dir.join("script");
    executable(&script, "#!/bin/busybox sh\necho \"script $1\"\n");
    let echo = dir.join("echo");
    let out = run(&[], &[echo.to_str().unwrap(), "hello"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
    let out = run(&[], &[script.to_str().unwrap(), "arg"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "script arg\n");
    // A program that prints argv[0] sees the host path, not the packed one.
    fs::write(
        dir.join("argv0.c"),
        "#include <stdio.h>\nint main(int c, char **v) { puts(v[0]); return 0; }\n",
    )
    .unwrap();
    host_sh("cc -o argv0 argv0.c", &dir);
    let argv0 = dir.join("argv0");
    let out = run(&[], &[argv0.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", argv0.display()));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_dynamic_program_under_tmp_runs() {
    let dir = host_tmp("dyn");
    let printf = dir.join("printf");
    fs::copy("/usr/bin/printf", &printf).unwrap();
    let out = run(&[], &[printf.to_str().unwrap(), "dyn %s\\n", "x"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "dyn x\n");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn env_scripts_bring_their_program() {
    let dir = scratch("env-script");
    let script = dir.join("hello");
    // env runs `busybox sh SCRIPT x`: busybox must be in the archive too.
    executable(
        &script,
        "#!/usr/bin/env -S busybox sh\necho \"from env $1\"\n",
    );
    let out = run(&[], &[script.to_str().unwrap(), "x"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "from env x\n");
}

/// The unstable kernel `scripts/setup-tests.sh` fetched into .cache/kernel-sid.
fn sid_kernel() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel-sid/usr/lib/modules");
    let release = fs::read_dir(&root)
        .ok()
        .and_then(|mut d| d.next())
        .unwrap_or_else(|| {
            panic!(
                "no kernel in {}: run scripts/setup-tests.sh",
                root.display()
            )
        })
        .unwrap();
    release.path().join("vmlinuz")
}

#[test]
fn a_kernel_with_virtio_built_in_boots_without_modules() {
    let kernel = sid_kernel();
    let out = run(
        &["--kernel", kernel.to_str().unwrap()],
        &["/bin/busybox", "sh", "-c", "uname -r; ls /modules | wc -l"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let release = kernel.parent().unwrap().file_name().unwrap();
    assert_eq!(stdout(&out), format!("{}\n0\n", release.to_str().unwrap()));
}

#[test]
fn a_mistyped_option_is_a_usage_error_naming_it() {
    let out = std::process::Command::new(guestinit())
        .args(["run", "--tiemout", "5", "--", "/bin/busybox", "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("unexpected argument '--tiemout'"), "{err}");
    assert!(err.contains("'--timeout'"), "{err}");
}

/// `guestinit run --kernel KERNEL -- busybox echo ok`, from `dir`.
fn run_kernel_from(dir: &Path, kernel: &Path) -> std::process::Output {
    require_vm_prerequisites();
    std::process::Command::new(guestinit())
        .current_dir(dir)
        .args(["run", "--timeout", VM_TIMEOUT_SECS, "--kernel"])
        .arg(kernel)
        .args(["--", "/bin/busybox", "echo", "ok"])
        .output()
        .unwrap()
}

#[test]
fn relative_and_symlinked_kernels_find_their_modules() {
    let kernel = deb_kernel();
    let boot = kernel.parent().unwrap();
    let links = scratch("kernel-links");
    std::os::unix::fs::symlink(&kernel, links.join("vmlinuz")).unwrap();
    for (dir, given) in [
        (boot, PathBuf::from(kernel.file_name().unwrap())),
        (boot, Path::new(".").join(kernel.file_name().unwrap())),
        (links.as_path(), PathBuf::from("vmlinuz")),
    ] {
        let out = run_kernel_from(dir, &given);
        assert_eq!(code(&out), 0, "{}: {}", given.display(), stderr(&out));
        assert_eq!(stdout(&out), "ok\n");
    }
}

/// Builds, under `dir`, `lib/libgreet.so` and `bin/greet` linked to it with
/// `rpath` as its RUNPATH (the C compiler links Rust too, so it is here).
fn build_greet(dir: &Path, rpath: &str) -> PathBuf {
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(
        dir.join("greet.c"),
        "#include <stdio.h>\nvoid greet(void) { puts(\"greet ok\"); }\n",
    )
    .unwrap();
    fs::write(
        dir.join("main.c"),
        "void greet(void);\nint main(void) { greet(); return 0; }\n",
    )
    .unwrap();
    host_sh(
        &format!(
            "cc -shared -fPIC -o lib/libgreet.so greet.c && \
             cc -o bin/greet main.c -Llib -lgreet -Wl,--enable-new-dtags,-rpath,'{rpath}'"
        ),
        dir,
    );
    dir.join("bin/greet")
}

#[test]
fn origin_libraries_move_with_a_program_under_tmp() {
    let dir = host_tmp("origin");
    let greet = build_greet(&dir, "$ORIGIN/../lib");
    let out = run(&[], &[greet.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "greet ok\n");

    // An absolute RUNPATH under /tmp is opened as written: refused.
    let greet = build_greet(&dir, &dir.join("lib").display().to_string());
    let out = run(&[], &[greet.to_str().unwrap()]);
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    assert!(stderr(&out).contains("libgreet.so (of"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("which the guest mounts over"),
        "{}",
        stderr(&out)
    );
    let _ = fs::remove_dir_all(dir);
}

/// Whether `pid` holds an open file whose name is gone, or `dir` has an
/// entry: either way the packing has begun writing the archive.
fn packing_under_way(pid: u32, dir: &Path) -> bool {
    let holds_unnamed = fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .any(|target| target.starts_with(dir))
    });
    holds_unnamed || fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn a_host_killed_while_packing_leaves_nothing_in_tmpdir() {
    require_vm_prerequisites();
    let dir = host_tmp("sigkill");
    let tmpdir = dir.join("tmpdir");
    fs::create_dir(&tmpdir).unwrap();
    // Big enough that packing takes a while: its archive is written to TMPDIR.
    let big = dir.join("big");
    fs::File::create(&big).unwrap().set_len(400 << 20).unwrap();
    let include = format!("{}:/data/big", big.display());
    let mut child = std::process::Command::new(guestinit())
        .env("TMPDIR", &tmpdir)
        .env("XDG_CACHE_HOME", shared_cache())
        .args([
            "run",
            "--memory",
            "2048",
            "--include",
            &include,
            "--",
            "/bin/true",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !packing_under_way(child.id(), &tmpdir) {
        assert!(t0.elapsed().as_secs() < 120, "packing never began");
        assert!(child.try_wait().unwrap().is_none(), "guestinit ended first");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<_> = fs::read_dir(&tmpdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fs::remove_dir_all(&dir).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}
