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
use crate::net::{Forward, NetMode};
use crate::topology::Topology;

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
    /// What `-kernel` loads: the image, or its vmlinux by PVH (`pvh`).
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// `-bios`: qboot where QEMU has it (`firmware`), else QEMU's default.
    pub firmware: Option<&'a Path>,
    /// The kernel reads `initramfs_options=` (6.18 on: `memory::rootfs_option`).
    pub initramfs_options: Option<&'a str>,
    /// A multiple of the topology's nodes (`memory::spread`).
    pub memory_mib: u32,
    pub cpus: u32,
    /// `--topology`: `-smp`'s levels and a NUMA node per socket.
    pub topology: Option<Topology>,
    /// The init's keys; those that follow from the links are set from
    /// `stdin` and `stats`.
    pub params: BootParams<'a>,
    /// The user's `--append`, last, so it overrides what comes before.
    pub append: Option<&'a str>,
    /// Disk images, attached as virtio-blk devices in order (vda, vdb, ...).
    pub disks: &'a [Disk],
    /// `--net`: a virtio-net NIC on that network, with `forwards` to it.
    pub net: Option<NetMode>,
    pub forwards: &'a [Forward],
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

/// A memory backend of `mib` MiB: QEMU's private RAM, or with shares a
/// shared memfd. A vhost-user daemon reaches the virtqueues and the
/// guest's buffers by mapping the guest's memory, which it can only
/// through memory shared with QEMU.
fn backend(id: &str, mib: u32, shared: bool) -> String {
    match shared {
        true => format!("memory-backend-memfd,id={id},size={mib}M,share=on"),
        false => format!("memory-backend-ram,id={id},size={mib}M"),
    }
}

/// The guest's memory as one shared backend, when the run has shares and
/// no NUMA nodes (with `--topology` each node's backend is shared instead,
/// `numa`). Without shares, QEMU's default (private anonymous memory).
fn memory_backend(config: &VmConfig<'_>) -> Vec<OsString> {
    if config.shares.is_empty() || config.topology.is_some() {
        return Vec::new();
    }
    let backend = backend("mem", config.memory_mib, true);
    strings(&["-object", &backend, "-machine", "memory-backend=mem"])
}

/// Share `index`'s device on its daemon's socket.
fn share(index: usize, device: &FsDevice) -> Vec<OsString> {
    let mut args = socket_chardev(&format!("fs{index}"), device.fd);
    let device = format!("vhost-user-fs-pci,chardev=fs{index},tag={}", device.tag);
    args.extend(strings(&["-device", &device]));
    args
}

/// The machine type. q35, not the i440FX `pc`: under TCG, `pc`'s ACPI
/// interrupt routing (`_PRT`, interpreted AML) made each PCI device's
/// INTx lookup cost 200-400 ms (Debian 12's virtio_pci load: 220-440 ms
/// there, 50-60 ms on q35; docs/DESIGN.md "q35").
const MACHINE: &str = "q35";

/// The machine: its type, accelerator, CPU, memory, and no default devices.
fn machine(config: &VmConfig<'_>) -> Vec<OsString> {
    let accel = match (config.accel, config.tcg_thread) {
        (Accel::Kvm, _) => "kvm",
        (Accel::Tcg, TcgThread::Multi) => "tcg",
        (Accel::Tcg, TcgThread::Single) => "tcg,thread=single",
    };
    // With nodes, `-m` must be their sum.
    let memory = match config.topology {
        Some(topology) => node_mib(config.memory_mib, topology) * topology.nodes,
        None => config.memory_mib,
    };
    strings(&[
        "-machine",
        MACHINE,
        "-accel",
        accel,
        "-cpu",
        cpu_model(config.accel, config.topology.is_some()),
        "-m",
        &memory.to_string(),
        "-smp",
        &smp(config.cpus, config.topology),
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ])
}

/// TCG's `max` is an AMD CPU (QEMU 7.2's `max_x86_cpu_initfn` sets vendor
/// AuthenticAMD) without TOPOEXT and with CmpLegacy, so Linux ignores the
/// leaves QEMU puts the cache topology in: it puts the L3 at the socket
/// and (6.1) sees no SMT. With a topology the same CPU says GenuineIntel,
/// and Linux reads the L3's sharing from CPUID 4 and the levels from 0x1F.
/// KVM's `host` keeps the host's vendor (untested here: no KVM).
fn cpu_model(accel: Accel, topology: bool) -> &'static str {
    match (accel, topology) {
        (Accel::Kvm, _) => "host",
        (Accel::Tcg, false) => "max",
        (Accel::Tcg, true) => "max,vendor=GenuineIntel",
    }
}

/// `-smp`: the count, or a topology's levels. An LLC is a die: QEMU 7.2's
/// `cpu_x86_cpuid` (target/i386/cpu.c) encodes CPUID 4's L3 as shared by
/// the `1 << apicid_die_offset` APIC IDs of a die; a node is a socket.
fn smp(cpus: u32, topology: Option<Topology>) -> String {
    match topology {
        Some(t) => format!(
            "{},sockets={},dies={},cores={},threads={}",
            t.cpus(),
            t.nodes,
            t.llcs,
            t.cores,
            t.threads
        ),
        None => cpus.to_string(),
    }
}

/// Each node's share of the memory (`memory::spread` made it a multiple).
fn node_mib(memory_mib: u32, topology: Topology) -> u32 {
    memory_mib / topology.nodes.max(1)
}

/// A NUMA node per socket, each with its share of the memory from a
/// backend of its own (QEMU refuses `-numa node,mem=` on machine types
/// from 5.1 on), and socket N's CPUs in node N (by topology, not index).
fn numa(config: &VmConfig<'_>) -> Vec<OsString> {
    let Some(topology) = config.topology else {
        return Vec::new();
    };
    let size = node_mib(config.memory_mib, topology);
    let mut args = Vec::new();
    for node in 0..topology.nodes {
        args.extend(strings(&[
            "-object",
            &backend(&format!("node{node}"), size, !config.shares.is_empty()),
            "-numa",
            &format!("node,nodeid={node},memdev=node{node}"),
        ]));
    }
    for node in 0..topology.nodes {
        args.extend(strings(&[
            "-numa",
            &format!("cpu,node-id={node},socket-id={node}"),
        ]));
    }
    args
}

/// Firmware, kernel, initramfs and command line.
fn boot(config: &VmConfig<'_>) -> Vec<OsString> {
    let mut append = base_append(&BootParams {
        stdin: config.stdin,
        stats: config.stats,
        ..config.params
    });
    // Before the user's `--append`, which may set it otherwise.
    for extra in [config.initramfs_options, config.append]
        .into_iter()
        .flatten()
    {
        append = format!("{append} {extra}");
    }
    let mut args = Vec::new();
    if let Some(firmware) = config.firmware {
        args.push("-bios".into());
        args.push(firmware.as_os_str().to_owned());
    }
    args.push("-kernel".into());
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
    strings(&["-device", "virtio-serial-pci,id=vser0,max_ports=6"])
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

/// Port 5, the run handed to a booted machine (`warm`).
pub fn handover_port(fd: RawFd) -> Vec<OsString> {
    named_port("handover", 5, proto::HANDOVER_PORT, fd)
}

/// A restore: QEMU reads the VM's state from `fd` (a snapshot's file, at
/// its stream) and goes on from it.
pub fn incoming(fd: RawFd) -> Vec<OsString> {
    strings(&["-incoming", &format!("fd:{fd}")])
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

/// QEMU's user network (slirp) at the addresses the init gives eth0
/// (`proto::net`, written out rather than left to QEMU's defaults), each
/// forward bound on the host's 127.0.0.1 only, and its virtio-net NIC.
/// `romfile=`: no iPXE option ROM for the firmware to run, as the kernel
/// is booted directly.
fn network(mode: NetMode, forwards: &[Forward]) -> Vec<OsString> {
    use proto::net;
    use std::net::Ipv4Addr;
    let NetMode::User = mode;
    let mut netdev = format!(
        "user,id=net0,net={}/{},host={},dns={}",
        Ipv4Addr::from(net::NETWORK),
        net::PREFIX_LEN,
        Ipv4Addr::from(net::GATEWAY),
        Ipv4Addr::from(net::DNS),
    );
    for Forward { host, guest } in forwards {
        let guest_address = Ipv4Addr::from(net::ADDRESS);
        netdev.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{host}-{guest_address}:{guest}"
        ));
    }
    strings(&[
        "-netdev",
        &netdev,
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ])
}

/// The arguments of `qemu-system-x86_64` for `config`, device by device.
pub fn args(config: &VmConfig<'_>) -> Vec<OsString> {
    [
        sandbox(config),
        machine(config),
        memory_backend(config),
        numa(config),
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
            .net
            .map(|mode| network(mode, config.forwards))
            .unwrap_or_default(),
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
            firmware: None,
            initramfs_options: None,
            memory_mib: 256,
            cpus: 2,
            topology: None,
            params: BootParams::default(),
            append,
            disks: &[],
            net: None,
            forwards: &[],
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
        // No topology: the plain count, TCG's own CPU, no NUMA.
        assert_eq!(
            got,
            "-machine q35 -accel tcg -cpu max -m 256 -smp 2 -nodefaults -display none -no-reboot \
             -kernel /k/vmlinuz -initrd /t/initramfs.cpio \
             -append console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 rdinit=/init \
             loglevel=5 no_timer_check cryptomgr.notests guestinit.ack \
             quiet loglevel=3 \
             -device virtio-serial-pci,id=vser0,max_ports=6 \
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
    fn a_topology_is_smp_levels_and_a_numa_node_per_socket() {
        let topology = Topology::parse("2,2,2,2").ok();
        let got = joined(&args(&VmConfig {
            memory_mib: 1024,
            cpus: 16,
            topology,
            ..config(Accel::Tcg, None)
        }));
        assert!(
            got.starts_with(
                "-machine q35 -accel tcg -cpu max,vendor=GenuineIntel -m 1024 \
                 -smp 16,sockets=2,dies=2,cores=2,threads=2 -nodefaults -display none -no-reboot \
                 -object memory-backend-ram,id=node0,size=512M -numa node,nodeid=0,memdev=node0 \
                 -object memory-backend-ram,id=node1,size=512M -numa node,nodeid=1,memdev=node1 \
                 -numa cpu,node-id=0,socket-id=0 -numa cpu,node-id=1,socket-id=1 \
                 -kernel /k/vmlinuz "
            ),
            "{got}"
        );
    }

    #[test]
    fn one_node_still_has_its_backend_and_kvm_keeps_the_host_cpu() {
        let topology = Topology::parse("1,2,2,1").ok();
        let argv = args(&VmConfig {
            memory_mib: 512,
            cpus: 4,
            topology,
            ..config(Accel::Kvm, None)
        });
        let got = joined(&argv[..argv.iter().position(|a| a == "-kernel").unwrap()]);
        assert_eq!(
            got,
            "-machine q35 -accel kvm -cpu host -m 512 -smp 4,sockets=1,dies=2,cores=2,threads=1 \
             -nodefaults -display none -no-reboot \
             -object memory-backend-ram,id=node0,size=512M -numa node,nodeid=0,memdev=node0 \
             -numa cpu,node-id=0,socket-id=0"
        );
    }

    #[test]
    fn the_numa_memory_always_sums_to_the_machines() {
        for spec in ["3,1,1,1", "2,1,1,1", "5,1,2,1"] {
            let topology = Topology::parse(spec).unwrap();
            for memory_mib in [300, 1002, 1024] {
                let argv = args(&VmConfig {
                    memory_mib,
                    cpus: topology.cpus(),
                    topology: Some(topology),
                    ..config(Accel::Tcg, None)
                });
                let m: u32 = argv[argv.iter().position(|a| a == "-m").unwrap() + 1]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let sizes: u32 = argv
                    .iter()
                    .filter_map(|a| a.to_str()?.strip_prefix("memory-backend-ram,"))
                    .map(|a| a.split("size=").nth(1).unwrap())
                    .map(|s| s.strip_suffix('M').unwrap().parse::<u32>().unwrap())
                    .sum();
                assert_eq!(m, sizes, "{spec} {memory_mib}");
            }
        }
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
        // With NUMA nodes, each node's backend is the shared one.
        let topology = Topology::parse("2,1,1,1").unwrap();
        let nodes = joined(&args(&VmConfig {
            shares: vec![FsDevice {
                fd: 20,
                tag: "share0".into(),
            }],
            cpus: 2,
            topology: Some(topology),
            ..config(Accel::Tcg, None)
        }));
        assert!(!nodes.contains("memory-backend=mem"), "{nodes}");
        assert!(
            nodes.contains(
                "-object memory-backend-memfd,id=node0,size=128M,share=on \
                 -numa node,nodeid=0,memdev=node0 \
                 -object memory-backend-memfd,id=node1,size=128M,share=on"
            ),
            "{nodes}"
        );
    }

    #[test]
    fn the_user_network_is_slirp_at_the_inits_addresses_with_its_forwards() {
        let forwards = [
            Forward {
                host: 8080,
                guest: 80,
            },
            Forward {
                host: 2222,
                guest: 22,
            },
        ];
        let got = joined(&args(&VmConfig {
            net: Some(NetMode::User),
            forwards: &forwards,
            ..config(Accel::Tcg, None)
        }));
        assert!(
            got.ends_with(
                "-netdev user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,\
             hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22 \
             -device virtio-net-pci,netdev=net0,romfile="
            ),
            "{got}"
        );
        let without = joined(&args(&config(Accel::Tcg, None)));
        assert!(!without.contains("-netdev") && !without.contains("virtio-net"));
    }

    #[test]
    fn qboot_and_a_pvh_vmlinux_come_as_bios_and_kernel() {
        let argv = args(&VmConfig {
            kernel: Path::new("/c/vmlinux/ab12"),
            firmware: Some(Path::new("/usr/share/qemu/qboot.rom")),
            ..config(Accel::Tcg, None)
        });
        let at = argv.iter().position(|a| a == "-bios").unwrap();
        assert_eq!(
            joined(&argv[at..at + 6]),
            "-bios /usr/share/qemu/qboot.rom -kernel /c/vmlinux/ab12 -initrd /t/initramfs.cpio"
        );
        assert_eq!(argv[at - 1], "-no-reboot");
    }

    #[test]
    fn initramfs_options_come_before_the_users_append() {
        let argv = args(&VmConfig {
            initramfs_options: Some("initramfs_options=size=90%"),
            ..config(Accel::Tcg, Some("quiet"))
        });
        let at = argv.iter().position(|a| a == "-append").unwrap();
        let line = argv[at + 1].to_str().unwrap();
        assert!(
            line.ends_with("guestinit.ack initramfs_options=size=90% quiet"),
            "{line}"
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
