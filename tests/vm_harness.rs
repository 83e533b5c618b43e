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
