//! Kernels by name: `guestinit kernel fetch debian:sid` against the
//! machine's own Debian archive (a private apt state), a cached kernel
//! used without apt, `--kernel debian:sid` booting it, and the errors
//! that name the spec.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};

fn guestinit_in(cache: &Path, path_prefix: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(guestinit());
    command.env("XDG_CACHE_HOME", cache).args(args);
    if let Some(prefix) = path_prefix {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut joined = prefix.as_os_str().to_owned();
        joined.push(":");
        joined.push(path);
        command.env("PATH", joined);
    }
    command.output().unwrap()
}

/// apt-get, apt-cache and dpkg-deb that leave a mark and fail: a fetch
/// that calls any of them is seen.
fn no_apt(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("no-apt");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        let script = format!("#!/bin/sh\ntouch {}/called-{tool}\nexit 1\n", dir.display());
        executable(&bin.join(tool), &script);
    }
    bin
}

#[test]
fn a_fetched_suite_is_used_from_the_cache_without_apt_and_boots_by_name() {
    let dir = scratch("kernel-fetch");
    let cache = dir.join("xdg");
    // Two first fetches at once, as two cells of a matrix make: one
    // fetches, the other waits for it and takes the same kernel.
    let second = {
        let cache = cache.clone();
        std::thread::spawn(move || guestinit_in(&cache, None, &["kernel", "fetch", "debian:sid"]))
    };
    let first = guestinit_in(&cache, None, &["kernel", "fetch", "debian:sid"]);
    let second = second.join().unwrap();
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert_eq!(stdout(&first), stdout(&second));
    let image = stdout(&first).trim_end().to_owned();
    assert!(
        image.starts_with(&format!(
            "{}/guestinit/kernels/debian-sid-",
            cache.display()
        )),
        "{image}"
    );
    assert!(Path::new(&image).is_file(), "{image}");

    // Cached: the same path, and not one apt or dpkg call.
    let bin = no_apt(&dir);
    let again = guestinit_in(&cache, Some(&bin), &["kernel", "fetch", "debian:sid"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(stdout(&again).trim_end(), image);
    let calls: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("called-"))
        .collect();
    assert!(calls.is_empty(), "{calls:?}");

    let list = guestinit_in(&cache, Some(&bin), &["kernel", "list"]);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    let line = stdout(&list);
    let release = Path::new(&image)
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        line.contains(&release) && line.contains("(debian:sid)"),
        "{line}"
    );

    // --kernel takes the name; the guest runs that release.
    let run = guestinit_in(
        &cache,
        Some(&bin),
        &[
            "run",
            "--timeout",
            VM_TIMEOUT_SECS,
            "--kernel",
            "debian:sid",
            "--",
            "/bin/busybox",
            "uname",
            "-r",
        ],
    );
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    assert_eq!(stdout(&run), format!("{release}\n"));
}

#[test]
fn specs_that_cannot_be_had_name_the_spec_and_why_before_any_boot() {
    let dir = scratch("kernel-fetch-bad");
    let cache = dir.join("xdg");
    let unknown = guestinit_in(&cache, None, &["kernel", "fetch", "debian:nosuchsuite"]);
    assert_eq!(code(&unknown), 249);
    assert!(
        stderr(&unknown).contains("kernel debian:nosuchsuite: ")
            && stderr(&unknown).contains("is nosuchsuite a Debian suite?"),
        "{}",
        stderr(&unknown)
    );
    let missing = guestinit_in(
        &cache,
        None,
        &[
            "run",
            "--kernel",
            "deb:/nonexistent/linux-image.deb",
            "--",
            "/bin/true",
        ],
    );
    assert_eq!(code(&missing), 249);
    assert!(
        stderr(&missing)
            .contains("kernel deb:/nonexistent/linux-image.deb: /nonexistent/linux-image.deb: "),
        "{}",
        stderr(&missing)
    );
    let bad = guestinit_in(&cache, None, &["kernel", "fetch", "debian:Sid"]);
    assert_eq!(code(&bad), 249);
    assert!(
        stderr(&bad).contains("kernel debian:Sid: a suite is"),
        "{}",
        stderr(&bad)
    );
}
