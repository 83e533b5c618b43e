//! QEMU's command line for a test VM: a pure function of its settings,
//! built by one small function per device. A link's device (a port, a
//! UART) is named by its entry in `links::TABLE`; other devices (a disk)
//! are a function and a line in [`args`].

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use guestinit::proto;
use guestinit::proto::boot::BootParams;

pub use super::accel::{Accel, TcgThread};
use crate::disk::Disk;

pub const QEMU: &str = "qemu-system-x86_64";

/// The boot levers that won under TCG (`scripts/bench.sh levers`, in
/// docs/BENCHMARKS.md): a console of warnings and worse, since every byte
/// to the 8250 traps into QEMU; no IO-APIC timer check; and no crypto
/// self-tests, whose threads otherwise run through the first second of
/// the init's life (`--append cryptomgr.notests=0` brings them back).
const BOOT_LEVERS: &str = "loglevel=5 no_timer_check cryptomgr.notests";
/// The kernel's early console on COM1 as well: a kernel that dies in its
/// early setup, before its console and `panic=` (an initrd it cannot
/// place), says why instead of spinning in silence. Before `loglevel=`
/// (early parameters are read in order): the console then takes over
/// without replaying the log, so what came before the parameters (the
/// version, command line, memory map) is shown now, or `--append
/// loglevel=7` would lose it. About 1 KB a boot; every message against
/// warnings only measured 0.99 (docs/BENCHMARKS.md).
const EARLY_CONSOLE: &str = "earlyprintk=serial,ttyS0,115200";

/// The kernel command line every test VM starts with: the kernel's levers,
/// then the init's keys for `params` (the ack always: the host answers
/// every EXIT with EACK).
pub fn base_append(params: &BootParams) -> String {
    let mut append = format!("console=ttyS0 {EARLY_CONSOLE} panic=-1 rdinit=/init {BOOT_LEVERS}");
    let params = BootParams {
        ack: true,
        ..*params
    };
    params
        .write_to(&mut append)
        .expect("a String takes any text");
    append
}

/// Everything the QEMU command line depends on.
pub struct VmConfig<'a> {
    pub accel: Accel,
    /// How TCG runs the vCPUs (`accel::tcg_thread`); KVM ignores it.
    pub tcg_thread: TcgThread,
    /// `-sandbox`'s value (`sandbox::SETTINGS`) when QEMU runs under its
    /// seccomp filter.
    pub sandbox: Option<&'a str>,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub memory_mib: u32,
    pub cpus: u32,
    /// The init's keys; those that follow from the links are set from
    /// `stdin` and `stats`.
    pub params: BootParams,
    /// The user's `--append`, last, so it overrides what comes before.
    pub append: Option<&'a str>,
    /// Disk images, attached as virtio-blk devices in order (vda, vdb, ...).
    pub disks: &'a [Disk],
    /// `--share`s' devices, in order; with any, the memory is shared.
    pub shares: Vec<FsDevice>,
    /// `--qemu-arg`s, passed last and as they are.
    pub extra: &'a [OsString],
    /// The links' devices on their inherited descriptors (`links::Links::qemu_args`).
    pub links: Vec<OsString>,
    /// The host relays its stdin, and a stats client (the guest is told).
    pub stdin: bool,
    pub stats: bool,
}

fn strings(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

/// A chardev on an inherited, already connected socket.
fn socket_chardev(id: &str, fd: RawFd) -> Vec<OsString> {
    strings(&["-chardev", &format!("socket,id={id},fd={fd}")])
}

/// A share's virtio-fs device: its daemon's socket, inherited as `fd`,
/// and the tag the guest mounts it by.
pub struct FsDevice {
    pub fd: RawFd,
    pub tag: String,
}

/// The guest's memory as one shared memfd, when the run has shares: a
/// vhost-user daemon maps the guest's memory to reach the virtqueues and
/// buffers, which it can only through memory shared with QEMU. Without
/// shares, QEMU's default (private anonymous memory).
fn memory_backend(config: &VmConfig<'_>) -> Vec<OsString> {
    if config.shares.is_empty() {
        return Vec::new();
    }
    let backend = format!(
        "memory-backend-memfd,id=mem,size={}M,share=on",
        config.memory_mib
    );
    strings(&["-object", &backend, "-machine", "memory-backend=mem"])
}

/// Share `index`'s device on its daemon's socket.
fn share(index: usize, device: &FsDevice) -> Vec<OsString> {
    let mut args = socket_chardev(&format!("fs{index}"), device.fd);
    let device = format!("vhost-user-fs-pci,chardev=fs{index},tag={}", device.tag);
    args.extend(strings(&["-device", &device]));
    args
}

/// The machine: accelerator, CPU, memory, and no default devices.
fn machine(config: &VmConfig<'_>) -> Vec<OsString> {
    let (accel, cpu) = match (config.accel, config.tcg_thread) {
        (Accel::Kvm, _) => ("kvm", "host"),
        (Accel::Tcg, TcgThread::Multi) => ("tcg", "max"),
        (Accel::Tcg, TcgThread::Single) => ("tcg,thread=single", "max"),
    };
    let (memory, cpus) = (config.memory_mib.to_string(), config.cpus.to_string());
    strings(&[
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-m",
        &memory,
        "-smp",
        &cpus,
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ])
}

/// Kernel, initramfs and command line.
fn boot(config: &VmConfig<'_>) -> Vec<OsString> {
    let mut append = base_append(&BootParams {
        stdin: config.stdin,
        stats: config.stats,
        ..config.params
    });
    if let Some(extra) = config.append {
        append = format!("{append} {extra}");
    }
    let mut args = strings(&["-kernel"]);
    args.push(config.kernel.as_os_str().to_owned());
    args.push("-initrd".into());
    args.push(config.initrd.as_os_str().to_owned());
    args.extend(strings(&["-append", &append]));
    args
}

/// A 16550 UART; the order of `-serial` options is the order of the ports.
fn serial(id: &str, fd: RawFd) -> Vec<OsString> {
    let mut args = socket_chardev(id, fd);
    args.extend(strings(&["-serial", &format!("chardev:{id}")]));
    args
}

/// The virtio-serial controller the ports hang on.
fn virtio_serial() -> Vec<OsString> {
    strings(&["-device", "virtio-serial-pci,id=vser0,max_ports=5"])
}

/// COM1, the kernel's console and the trace; COM2, the init's own lines.
pub fn com1(fd: RawFd) -> Vec<OsString> {
    serial("com1", fd)
}

pub fn com2(fd: RawFd) -> Vec<OsString> {
    serial("com2", fd)
}

/// Port 0 (hvc0): the host's wake bytes to the init.
pub fn hvc0(fd: RawFd) -> Vec<OsString> {
    let mut args = socket_chardev("hvc0", fd);
    args.extend(strings(&[
        "-device",
        "virtconsole,bus=vser0.0,nr=0,chardev=hvc0",
    ]));
    args
}

/// A virtio-serial port `nr` on an inherited socket, named so the init
/// finds it by name.
fn named_port(id: &str, nr: u8, name: &str, fd: RawFd) -> Vec<OsString> {
    let mut args = socket_chardev(id, fd);
    let device = format!("virtserialport,bus=vser0.0,nr={nr},chardev={id},name={name}");
    args.extend(strings(&["-device", &device]));
    args
}

/// Port 1, the frame stream.
pub fn bulk_port(fd: RawFd) -> Vec<OsString> {
    named_port("bulk", 1, proto::BULK_PORT, fd)
}

/// Port 2, the scheduler's stats relay.
pub fn stats_port(fd: RawFd) -> Vec<OsString> {
    named_port("stats", 2, proto::STATS_PORT, fd)
}

/// Port 3, the host's stdin for the payload.
pub fn stdin_port(fd: RawFd) -> Vec<OsString> {
    named_port("stdin", 3, proto::STDIN_PORT, fd)
}

/// Port 4, the host's control messages in shell and exec modes.
pub fn control_port(fd: RawFd) -> Vec<OsString> {
    named_port("ctl", 4, proto::CONTROL_PORT, fd)
}

/// The QMP monitor the host stops the VM through.
pub fn qmp(fd: RawFd) -> Vec<OsString> {
    let mut args = socket_chardev("qmp", fd);
    args.extend(strings(&["-mon", "chardev=qmp,mode=control"]));
    args
}

/// The id of disk `index`'s drive, which QEMU's events name it by.
const DRIVE_ID: &str = "disk";

/// The disk index behind a drive id QEMU names (`disk3`: 3).
pub fn drive_index(id: &str) -> Option<usize> {
    let digits = id.strip_prefix(DRIVE_ID)?;
    let canonical = !digits.is_empty() && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// Disk `index` as a virtio-blk device on its image (raw: no format
/// probing); `,ro` is QEMU's `readonly=on`, so not even a journal replay
/// writes it. A full host file system pauses the guest (`werror=enospc`,
/// QEMU's default, written out because the host relies on it: it then ends
/// the run naming the disk); any other error reaches the guest as EIO, as
/// a real disk's would.
fn disk(index: usize, disk: &Disk) -> Vec<OsString> {
    let mut drive = format!("if=none,id={DRIVE_ID}{index},format=raw,werror=enospc,rerror=report,")
        .into_bytes();
    if disk.read_only {
        drive.extend_from_slice(b"readonly=on,");
    }
    drive.extend_from_slice(b"file=");
    // QEMU's option syntax: a comma in a value is written twice.
    for &b in disk.path.as_os_str().as_bytes() {
        drive.extend_from_slice(if b == b',' {
            b",,"
        } else {
            std::slice::from_ref(&b)
        });
    }
    vec![
        "-drive".into(),
        OsString::from_vec(drive),
        "-device".into(),
        format!("virtio-blk-pci,drive=disk{index}").into(),
    ]
}

/// QEMU's seccomp filter, when the run has it (`sandbox::decide`).
fn sandbox(config: &VmConfig<'_>) -> Vec<OsString> {
    match config.sandbox {
        Some(settings) => strings(&["-sandbox", settings]),
        None => Vec::new(),
    }
}

/// The arguments of `qemu-system-x86_64` for `config`, device by device.
pub fn args(config: &VmConfig<'_>) -> Vec<OsString> {
    [
        sandbox(config),
        machine(config),
        memory_backend(config),
        boot(config),
        // The ports' bus, before the ports.
        virtio_serial(),
        config.links.clone(),
        config
            .disks
            .iter()
            .enumerate()
            .flat_map(|(i, d)| disk(i, d))
            .collect(),
        config
            .shares
            .iter()
            .enumerate()
            .flat_map(|(i, d)| share(i, d))
            .collect(),
        config.extra.to_vec(),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config<'a>(accel: Accel, append: Option<&'a str>) -> VmConfig<'a> {
        VmConfig {
            accel,
            tcg_thread: TcgThread::Multi,
            sandbox: None,
            kernel: Path::new("/k/vmlinuz"),
            initrd: Path::new("/t/initramfs.cpio"),
            memory_mib: 256,
            cpus: 2,
            params: BootParams::default(),
            append,
            disks: &[],
            shares: Vec::new(),
            extra: &[],
            links: [com1(6), com2(7), hvc0(10), bulk_port(5), qmp(8)].concat(),
            stdin: false,
            stats: false,
        }
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn tcg_command_line() {
        let got = joined(&args(&config(Accel::Tcg, Some("quiet loglevel=3"))));
        assert_eq!(
            got,
            "-accel tcg -cpu max -m 256 -smp 2 -nodefaults -display none -no-reboot \
             -kernel /k/vmlinuz -initrd /t/initramfs.cpio \
             -append console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 rdinit=/init \
             loglevel=5 no_timer_check cryptomgr.notests guestinit.ack \
             quiet loglevel=3 \
             -device virtio-serial-pci,id=vser0,max_ports=5 \
             -chardev socket,id=com1,fd=6 -serial chardev:com1 \
             -chardev socket,id=com2,fd=7 -serial chardev:com2 \
             -chardev socket,id=hvc0,fd=10 -device virtconsole,bus=vser0.0,nr=0,chardev=hvc0 \
             -chardev socket,id=bulk,fd=5 \
             -device virtserialport,bus=vser0.0,nr=1,chardev=bulk,name=guestinit.bulk \
             -chardev socket,id=qmp,fd=8 -mon chardev=qmp,mode=control"
        );
    }

    #[test]
    fn single_threaded_tcg_says_so_in_its_accel() {
        let single = VmConfig {
            tcg_thread: TcgThread::Single,
            ..config(Accel::Tcg, None)
        };
        let argv = args(&single);
        let at = argv.iter().position(|a| a == "-accel").unwrap();
        assert_eq!(argv[at + 1], "tcg,thread=single");
    }

    #[test]
    fn kvm_uses_the_host_cpu_and_append_is_one_argument() {
        let argv = args(&config(Accel::Kvm, None));
        let at = |s: &str| argv.iter().position(|a| a == s).unwrap();
        assert_eq!(argv[at("-accel") + 1], "kvm");
        assert_eq!(argv[at("-cpu") + 1], "host");
        assert_eq!(
            argv[at("-append") + 1],
            *base_append(&BootParams::default())
        );
    }

    #[test]
    fn the_inits_keys_come_in_the_hosts_order_before_the_users_append() {
        use guestinit::proto::boot::{Disks, Mode};
        let mut disks = Disks::default();
        disks.push(false).unwrap();
        disks.push(true).unwrap();
        let mut config = config(Accel::Tcg, Some("guestinit.mode=exec quiet"));
        config.params = BootParams {
            pob: Some(0x1a1c3d8),
            attach_timeout_s: Some(10),
            mode: Mode::Shell,
            disks,
            ..BootParams::default()
        };
        config.stats = true;
        let argv = args(&config);
        let at = argv.iter().position(|a| a == "-append").unwrap();
        assert_eq!(
            argv[at + 1],
            "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 rdinit=/init loglevel=5 \
             no_timer_check cryptomgr.notests guestinit.ack guestinit.stats guestinit.pob=1a1c3d8 guestinit.attach_timeout=10 \
             guestinit.mode=shell guestinit.disks=rw,ro guestinit.mode=exec quiet"
        );
    }

    #[test]
    fn a_relayed_stdin_is_port_3_and_the_guest_is_told() {
        let mut config = config(Accel::Tcg, None);
        config.stdin = true;
        config.links.extend(stdin_port(9));
        let got = joined(&args(&config));
        assert!(got.contains("guestinit.ack guestinit.stdin"), "{got}");
        assert!(got.contains(
            "-chardev socket,id=stdin,fd=9 \
             -device virtserialport,bus=vser0.0,nr=3,chardev=stdin,name=guestinit.stdin"
        ));
    }

    #[test]
    fn the_sandbox_comes_first() {
        let settings = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
        let argv = args(&VmConfig {
            sandbox: Some(settings),
            ..config(Accel::Tcg, None)
        });
        assert_eq!(joined(&argv[..2]), format!("-sandbox {settings}"));
        assert!(!joined(&args(&config(Accel::Tcg, None))).contains("-sandbox"));
    }

    #[test]
    fn extra_arguments_come_last_as_given() {
        let extra = [OsString::from("-device"), OsString::from("virtio-rng-pci")];
        let argv = args(&VmConfig {
            extra: &extra,
            ..config(Accel::Tcg, None)
        });
        assert_eq!(argv[argv.len() - 2..], extra);
    }

    #[test]
    fn disks_are_virtio_blk_in_order_and_ro_is_readonly() {
        let disks = [
            Disk::parse("/d/a,b.img").unwrap(),
            Disk::parse("/d/c.img,ro").unwrap(),
        ];
        let got = joined(&args(&VmConfig {
            disks: &disks,
            ..config(Accel::Tcg, None)
        }));
        assert!(got.ends_with(
            "-drive if=none,id=disk0,format=raw,werror=enospc,rerror=report,file=/d/a,,b.img \
             -device virtio-blk-pci,drive=disk0 \
             -drive if=none,id=disk1,format=raw,werror=enospc,rerror=report,readonly=on,file=/d/c.img \
             -device virtio-blk-pci,drive=disk1"
        ), "{got}");
        assert_eq!(drive_index("disk1"), Some(1));
        for other in ["disk", "disk01", "disk1x", "#block12", ""] {
            assert_eq!(drive_index(other), None, "{other}");
        }
    }

    #[test]
    fn shares_are_vhost_user_fs_devices_on_their_sockets_and_share_the_memory() {
        let plain = joined(&args(&config(Accel::Tcg, None)));
        assert!(!plain.contains("memory-backend"), "{plain}");
        let shares = vec![
            FsDevice {
                fd: 20,
                tag: "share0".into(),
            },
            FsDevice {
                fd: 21,
                tag: "share1".into(),
            },
        ];
        let got = joined(&args(&VmConfig {
            shares,
            ..config(Accel::Tcg, None)
        }));
        assert!(
            got.contains(
                "-m 256 -smp 2 -nodefaults -display none -no-reboot \
             -object memory-backend-memfd,id=mem,size=256M,share=on -machine memory-backend=mem \
             -kernel"
            ),
            "{got}"
        );
        assert!(
            got.ends_with(
                "-chardev socket,id=fs0,fd=20 -device vhost-user-fs-pci,chardev=fs0,tag=share0 \
             -chardev socket,id=fs1,fd=21 -device vhost-user-fs-pci,chardev=fs1,tag=share1"
            ),
            "{got}"
        );
    }

    #[test]
    fn a_relative_disk_with_a_colon_reaches_qemu_as_an_absolute_file() {
        let disks = [Disk::parse("x:y.img,ro").unwrap()];
        let got = joined(&args(&VmConfig {
            disks: &disks,
            ..config(Accel::Tcg, None)
        }));
        let cwd = std::env::current_dir().unwrap();
        let want = format!("readonly=on,file={}/x:y.img ", cwd.display());
        assert!(cwd.is_absolute() && got.contains(&want), "{got}");
    }
}
