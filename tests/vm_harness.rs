//! What harness authors need, proven in a VM: the kernel's config at
//! /boot, QEMU arguments passed through, included files, the payload's
//! environment and working directory, JSON events, memory sized from the
//! archive, and guestinit as cargo's test runner.

mod common;
use common::*;

#[test]
fn the_kernels_config_is_at_boot_config_release() {
    let out = sh(&[], "grep -c '^CONFIG_VIRTIO=' /boot/config-$(uname -r)");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\n");
}

#[test]
fn qemu_args_reach_qemu_as_given() {
    let probe = [
        "--qemu-arg",
        "-smbios",
        "--qemu-arg",
        "type=1,product=guestinit-probe",
    ];
    let out = sh(&probe, "cat /sys/class/dmi/id/product_name");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "guestinit-probe\n");
}

#[test]
fn included_files_and_programs_arrive_and_programs_lead_path() {
    let dir = scratch("vm-harness-include");
    let tools = dir.join("tools");
    std::fs::create_dir_all(tools.join("bin")).unwrap();
    std::fs::create_dir_all(tools.join("empty")).unwrap();
    std::fs::write(tools.join("notes.txt"), "notes\n").unwrap();
    let tool = tools.join("bin/mytool");
    std::fs::write(&tool, "#!/bin/busybox sh\necho \"tool ran from $0\"\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let file = dir.join("data.txt");
    std::fs::write(&file, "data\n").unwrap();
    let include_dir = tools.to_str().unwrap();
    let include_file = format!("{}:/opt/d.txt", file.display());
    let script = "mytool; cat /include-files/tools/notes.txt /opt/d.txt; \
                  [ -d /include-files/tools/empty ] && echo empty; echo $PATH";
    let out = sh(
        &["--include", include_dir, "--include", &include_file],
        script,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let want = format!(
        "tool ran from /include-files/tools/bin/mytool\nnotes\ndata\nempty\n/include-files/tools/bin:{}\n",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(stdout(&out), want);
}

#[test]
fn env_and_cwd_reach_the_payload_and_bad_ones_are_refused_at_pack_time() {
    let args = [
        "--env",
        "GREETING=hello world",
        "--env",
        "HOME=/root",
        "--cwd",
        "/proc",
    ];
    let out = sh(&args, "echo \"$GREETING $HOME $TERM\"; pwd");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello world /root linux\n/proc\n");
    let out = sh(&["--env", "NOVALUE"], "true");
    assert_eq!(code(&out), 249);
    assert!(
        stderr(&out).contains("--env \"NOVALUE\": it is not K=V"),
        "{}",
        stderr(&out)
    );
}
