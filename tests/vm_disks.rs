//! Disk images: `guestinit mkdisk` formats one inside a VM, and `run --disk`
//! mounts it at /mnt/disk0, read-write or read-only; a disk that holds no
//! filesystem is warned of and the payload still runs. Boots the real
//! kernel under QEMU (never skipped; see tests/common).

mod common;

use common::{code, guestinit, require_vm_prerequisites, scratch, sh, stderr, stdout, Tmpfs};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `guestinit mkdisk ARGS...`, its stderr echoed for the test log.
fn mkdisk(args: &[&str], file: &Path) -> Output {
    require_vm_prerequisites();
    let out = Command::new(guestinit())
        .args(["mkdisk", "--timeout", common::VM_TIMEOUT_SECS])
        .args(args)
        .arg(file)
        .output()
        .expect("start guestinit mkdisk");
    eprintln!("--- mkdisk stderr ---\n{}", stderr(&out));
    out
}

/// The ext2/3/4 superblock magic, read on the host.
fn has_ext_magic(file: &Path) -> bool {
    let image = std::fs::read(file).unwrap();
    image.get(1080..1082) == Some(&[0x53, 0xEF][..])
}

#[test]
fn mkdisk_then_a_run_writes_a_file_and_a_read_only_run_reads_it_but_cannot_write() {
    let dir = scratch("mkdisk-ext4");
    let image = dir.join("disk.img");
    let out = mkdisk(&["--fs", "ext4", "--size", "32M"], &image);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("ext4 filesystem"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 32 << 20);
    assert!(has_ext_magic(&image));

    let disk = image.to_str().unwrap();
    let out = sh(
        &["--disk", disk],
        "echo written-in-the-vm > /mnt/disk0/note && echo ok",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");

    let read_only = format!("{disk},ro");
    let out = sh(
        &["--disk", &read_only],
        "read -r line < /mnt/disk0/note && echo \"$line\"; \
         if echo x > /mnt/disk0/other; then echo wrote; exit 1; fi; echo refused",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "written-in-the-vm\nrefused\n");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );

    // Disks are numbered in the order given: behind an unmountable disk0,
    // the image is disk1.
    let blank = dir.join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let blank = format!("{},ro", blank.display());
    let out = sh(
        &["--disk", &blank, "--disk", &read_only],
        "read -r line < /mnt/disk1/note && echo \"$line\"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "written-in-the-vm\n");
    assert!(
        stderr(&out).contains("disk0 is not mounted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_disk_without_a_filesystem_is_warned_of_and_the_payload_runs() {
    let dir = scratch("garbage-disk");
    let image = dir.join("garbage.img");
    let garbage: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&image, garbage).unwrap();
    let com2 = dir.join("com2.log");
    let out = sh(
        &[
            "--disk",
            image.to_str().unwrap(),
            "--com2-log",
            com2.to_str().unwrap(),
        ],
        "echo payload ran",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "payload ran\n");
    let warning = "guestinit: disk0 is not mounted: /dev/vda holds no filesystem";
    assert!(stderr(&out).contains(warning), "{}", stderr(&out));
    let com2 = std::fs::read_to_string(&com2).unwrap();
    assert!(com2.contains(warning), "{com2}");
}

#[test]
fn a_missing_disk_file_is_refused_before_the_boot_by_name() {
    let dir = scratch("missing-disk");
    let missing = dir.join("no-such.img");
    let out = sh(&["--disk", missing.to_str().unwrap()], "echo booted");
    assert_eq!(code(&out), 249);
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("no-such.img"), "{}", stderr(&out));
}

#[test]
fn more_disks_than_the_guest_mounts_are_refused_before_the_boot() {
    let dir = scratch("too-many-disks");
    let image = dir.join("blank.img");
    std::fs::write(&image, [0u8; 4096]).unwrap();
    let disk = format!("{},ro", image.display());
    let args: Vec<&str> = std::iter::repeat_n(["--disk", disk.as_str()], 17)
        .flatten()
        .collect();
    let out = sh(&args, "echo booted");
    assert_eq!(code(&out), 249);
    assert!(
        stderr(&out).contains("17 disks: the guest mounts at most 16"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mkdisk_never_overwrites_an_existing_file() {
    let dir = scratch("mkdisk-exists");
    let image = dir.join("taken.img");
    std::fs::write(&image, b"keep me").unwrap();
    let out = mkdisk(&["--fs", "ext4"], &image);
    assert_eq!(code(&out), 249);
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&image).unwrap(), b"keep me");
}

/// Where btrfs-progs is installed the image is made; where it is not (as
/// on the CI machine), the host says so with 249 and leaves no file.
#[test]
fn mkdisk_btrfs_needs_mkfs_btrfs_on_the_host() {
    let dir = scratch("mkdisk-btrfs");
    let image = dir.join("btrfs.img");
    let out = mkdisk(&["--fs", "btrfs", "--size", "128M"], &image);
    let host_has_it = [
        "/usr/sbin/mkfs.btrfs",
        "/sbin/mkfs.btrfs",
        "/usr/bin/mkfs.btrfs",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if host_has_it {
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let image = std::fs::read(&image).unwrap();
        assert_eq!(image.get(0x10040..0x10048), Some(&b"_BHRfS_M"[..]));
    } else {
        assert_eq!(code(&out), 249);
        let said = stderr(&out);
        assert!(
            said.contains("mkfs.btrfs is missing") && said.contains("btrfs-progs"),
            "{said}"
        );
        assert!(!image.exists());
    }
}

/// The Debian kernel setup.sh fetched: its image and its module tree.
fn cached_kernel() -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel");
    let release = std::fs::read_dir(root.join("lib/modules"))
        .ok()
        .and_then(|mut d| d.next())
        .expect("no module tree under .cache/kernel: run scripts/setup.sh")
        .unwrap()
        .file_name();
    let release = release.to_str().unwrap();
    let kernel = root.join(format!("boot/vmlinuz-{release}"));
    let modules = root.join("lib/modules").join(release);
    (kernel.display().to_string(), modules.display().to_string())
}

/// QEMU's `-kernel` in `qemu` (a command line) is `kernel`, or the vmlinux
/// taken out of it for a PVH boot: an ELF of the size its bzImage says.
fn assert_boots_kernel(qemu: &str, kernel: &str) {
    let loaded = qemu
        .split(" -kernel ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no -kernel in {qemu}"));
    if loaded == kernel {
        return;
    }
    let image = std::fs::read(kernel).unwrap();
    let payload = guestinit::parse::kernel_image::payload(&image).expect("a bzImage");
    let elf = std::fs::read(loaded).unwrap();
    assert!(loaded.contains("/vmlinux/"), "{loaded} for {kernel}");
    assert!(
        elf.starts_with(b"\x7fELF") && elf.len() == payload.size as usize,
        "{loaded}"
    );
}

/// mkdisk takes the VM options `run` takes, and honours them: the kernel
/// and modules named, memory and CPUs on QEMU's command line; a module
/// tree without the virtio drivers is refused before any boot.
#[test]
fn mkdisk_takes_the_vm_options_of_run() {
    require_vm_prerequisites();
    let (kernel, modules) = cached_kernel();
    let dir = scratch("mkdisk-vm-options");
    let image = dir.join("disk.img");
    let vm = [
        "--kernel",
        &kernel,
        "--modules",
        &modules,
        "--memory",
        "320",
        "--cpus",
        "2",
        "-v",
    ];
    let out = mkdisk(
        &[&vm[..], &["--fs", "ext4", "--size", "16M"]].concat(),
        &image,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(has_ext_magic(&image));
    let said = stderr(&out);
    let qemu = said
        .lines()
        .find(|l| l.starts_with("guestinit: qemu-system-x86_64 "))
        .unwrap_or_else(|| panic!("no QEMU command line in:\n{said}"));
    for want in [" -m 320 ", " -smp 2 "] {
        assert!(qemu.contains(want), "{want:?} not in {qemu}");
    }
    assert_boots_kernel(qemu, &kernel);

    let empty = dir.join("no-modules");
    std::fs::create_dir(&empty).unwrap();
    let refused = dir.join("refused.img");
    let out = mkdisk(
        &[
            "--kernel",
            &kernel,
            "--modules",
            empty.to_str().unwrap(),
            "--fs",
            "ext4",
        ],
        &refused,
    );
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    assert!(stderr(&out).contains("no-modules"), "{}", stderr(&out));
    assert!(!refused.exists(), "an image that was not made is removed");
}

#[test]
fn a_daemon_left_on_the_disk_is_killed_so_the_disk_unmounts_clean() {
    let dir = scratch("busy-disk");
    let image = dir.join("disk.img");
    assert_eq!(code(&mkdisk(&["--fs", "ext4", "--size", "32M"], &image)), 0);
    let disk = image.to_str().unwrap();
    // A daemon in its own session, with a file open for writing on the
    // disk, outlives the payload: the disk is busy when the init unmounts.
    // The payload ends once the daemon says its file is open and written
    // (by its full path: the `cd` is the background list's own).
    let out = sh(
        &["--disk", disk],
        "cd /mnt/disk0 && setsid sh -c 'exec 3>held; echo x >&3; : > ready; exec sleep 600' \
         </dev/null >/dev/null 2>&1 & until [ -e /mnt/disk0/ready ]; do sleep 0.05; done; echo started",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "started\n");
    assert!(
        stderr(&out).contains("disk0 is busy: killing what is left"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("unmount disk0"), "{}", stderr(&out));
    // Clean, so a read-only run (which cannot replay a journal) mounts it.
    let read_only = format!("{disk},ro");
    let out = sh(&["--disk", &read_only], "cat /mnt/disk0/held");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "x\n", "{}", stderr(&out));
}

/// The host's file system under a sparse image fills: QEMU pauses the
/// guest (BLOCK_IO_ERROR, then STOP on QMP). The run ends at once, names
/// the disk and the cause, and keeps the payload's output so far.
#[test]
fn a_full_host_disk_under_a_sparse_image_ends_the_run_at_once_naming_it() {
    require_vm_prerequisites();
    let dir = scratch("host-disk-full");
    let tmpfs = Tmpfs::mount(&dir.join("small"), "2m");
    // 64 MiB the guest sees, 2 MiB the host has; few inodes, so mkfs's
    // own writes stay far below the 2 MiB.
    let image = tmpfs.0.join("sparse.img");
    let status = Command::new("truncate")
        .args(["-s", "64M"])
        .arg(&image)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-N", "128"])
        .arg(&image)
        .status()
        .expect("mkfs.ext4 is installed by scripts/setup-tests.sh");
    assert!(status.success());
    let disk = image.to_str().unwrap();
    let started = Instant::now();
    let out = sh(
        &["--disk", disk],
        "echo before-the-fill; dd if=/dev/zero of=/mnt/disk0/fill bs=1M count=16 2>/dev/null; \
         sync; echo after-the-sync",
    );
    let took = started.elapsed();
    eprintln!("the run took {took:?}");
    let said = stderr(&out);
    assert_eq!(code(&out), 251, "{said}");
    assert_eq!(stdout(&out), "before-the-fill\n");
    let want = format!("disk0 ({disk}): write failed on the host: No space left on device");
    assert!(said.contains(&want), "{said}");
    assert!(said.contains("QEMU paused the guest"), "{said}");
    let timeout = Duration::from_secs(common::VM_TIMEOUT_SECS.parse().unwrap());
    assert!(took < timeout / 2, "{took:?}: not at once");
}
