//! QEMU: the command line of a test VM (a pure function of its settings)
//! and the running process, which is killed if the host gives up on it.

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use guestinit::proto;

pub const QEMU: &str = "qemu-system-x86_64";

/// The kernel command line every test VM starts with.
pub fn base_append() -> String {
    format!("console=ttyS0 panic=-1 rdinit=/init {}", proto::key::ACK)
}

/// How long QEMU may take to connect to the bulk socket: it does so while
/// setting up its devices, before the guest runs, so this is generous.
const CONNECT_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// KVM when /dev/kvm opens read-write and the CPU has VMX or SVM; else TCG.
pub fn detect_accel() -> Accel {
    let kvm_opens = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let cpu_has_virt = fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| has_virt_flag(&c));
    if kvm_opens && cpu_has_virt {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

fn has_virt_flag(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|flag| flag == "vmx" || flag == "svm")
}

/// Everything the QEMU command line depends on.
pub struct VmConfig<'a> {
    pub accel: Accel,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub memory_mib: u32,
    pub cpus: u32,
    pub append: Option<&'a str>,
    pub com1: &'a Path,
    pub com2: &'a Path,
    pub bulk_socket: &'a Path,
}

/// QEMU option values are comma-separated: a comma in a path is doubled.
fn opt_path(prefix: &str, path: &Path) -> OsString {
    let mut out = prefix.as_bytes().to_vec();
    for &b in path.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// The arguments of `qemu-system-x86_64` for `config`.
pub fn args(config: &VmConfig<'_>) -> Vec<OsString> {
    let (accel, cpu) = match config.accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    let append = match config.append {
        Some(extra) => format!("{} {extra}", base_append()),
        None => base_append(),
    };
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&OsStr]| args.extend(items.iter().map(|s| s.to_os_string()));
    let os = OsStr::new;
    push(&[os("-accel"), os(accel), os("-cpu"), os(cpu)]);
    push(&[os("-m"), os(&config.memory_mib.to_string())]);
    push(&[os("-smp"), os(&config.cpus.to_string())]);
    push(&[
        os("-nodefaults"),
        os("-display"),
        os("none"),
        os("-no-reboot"),
    ]);
    push(&[os("-kernel"), config.kernel.as_os_str()]);
    push(&[os("-initrd"), config.initrd.as_os_str()]);
    push(&[os("-append"), os(&append)]);
    // COM1 then COM2: the order of -serial options is the order of the ports.
    push(&[os("-chardev"), &opt_path("file,id=com1,path=", config.com1)]);
    push(&[os("-serial"), os("chardev:com1")]);
    push(&[os("-chardev"), &opt_path("file,id=com2,path=", config.com2)]);
    push(&[os("-serial"), os("chardev:com2")]);
    push(&[os("-device"), os("virtio-serial-pci,id=vser0,max_ports=4")]);
    // Port 0 (hvc0) is kept for the shell mode; nothing is attached yet.
    push(&[os("-chardev"), os("null,id=hvc0")]);
    push(&[
        os("-device"),
        os("virtconsole,bus=vser0.0,nr=0,chardev=hvc0"),
    ]);
    // QEMU connects as a client to the socket the host already listens on,
    // so nothing the guest sends can precede the host's reader.
    push(&[
        os("-chardev"),
        &opt_path("socket,id=bulk,path=", config.bulk_socket),
    ]);
    push(&[
        os("-device"),
        os(&format!(
            "virtserialport,bus=vser0.0,nr=1,chardev=bulk,name={}",
            proto::BULK_PORT
        )),
    ]);
    args
}

/// A running QEMU. Dropping it kills the VM if it still runs.
pub struct Vm {
    child: Child,
    stderr_path: PathBuf,
    pub spawned: Instant,
}

impl Vm {
    /// Starts QEMU with `args`, its stderr going to `stderr_path`.
    pub fn spawn(args: &[OsString], stderr_path: &Path) -> Result<Vm> {
        let stderr = fs::File::create(stderr_path).map_err(|source| Error::VmSetup {
            what: format!("creating {}", stderr_path.display()),
            source,
        })?;
        let child = Command::new(QEMU)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::QemuMissing,
                _ => Error::QemuSpawn(e),
            })?;
        Ok(Vm {
            child,
            stderr_path: stderr_path.to_owned(),
            spawned: Instant::now(),
        })
    }

    /// What QEMU wrote to its stderr so far.
    pub fn stderr(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits for QEMU's connection to the bulk socket, failing if QEMU exits
    /// first or takes too long. `Ok(None)` when `deadline` passes first.
    pub fn accept(
        &mut self,
        listener: &UnixListener,
        deadline: Option<Instant>,
    ) -> Result<Option<UnixStream>> {
        let setup = |source| Error::VmSetup {
            what: "accepting QEMU's connection on the bulk socket".into(),
            source,
        };
        listener.set_nonblocking(true).map_err(setup)?;
        let give_up = Instant::now() + CONNECT_WAIT;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).map_err(setup)?;
                    return Ok(Some(stream));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(setup(e)),
            }
            if let Some(status) = self.try_wait()? {
                return Err(Error::QemuFailed {
                    status,
                    stderr: self.stderr(),
                });
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            if now >= give_up {
                return Err(Error::QemuNoConnect {
                    secs: CONNECT_WAIT.as_secs(),
                    stderr: self.stderr(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().map_err(|source| Error::VmSetup {
            what: "waiting for QEMU".into(),
            source,
        })
    }

    /// Waits for QEMU to exit; `Ok(None)` when `deadline` passes first.
    pub fn wait(&mut self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Best effort: the VM is abandoned either way.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config<'a>(accel: Accel, append: Option<&'a str>) -> VmConfig<'a> {
        VmConfig {
            accel,
            kernel: Path::new("/k/vmlinuz"),
            initrd: Path::new("/t/initramfs.cpio"),
            memory_mib: 256,
            cpus: 2,
            append,
            com1: Path::new("/t/com1.log"),
            com2: Path::new("/t/a,b/com2.log"),
            bulk_socket: Path::new("/t/bulk.sock"),
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
             -append console=ttyS0 panic=-1 rdinit=/init guestinit.ack quiet loglevel=3 \
             -chardev file,id=com1,path=/t/com1.log -serial chardev:com1 \
             -chardev file,id=com2,path=/t/a,,b/com2.log -serial chardev:com2 \
             -device virtio-serial-pci,id=vser0,max_ports=4 \
             -chardev null,id=hvc0 -device virtconsole,bus=vser0.0,nr=0,chardev=hvc0 \
             -chardev socket,id=bulk,path=/t/bulk.sock \
             -device virtserialport,bus=vser0.0,nr=1,chardev=bulk,name=guestinit.bulk"
        );
    }

    #[test]
    fn kvm_uses_the_host_cpu_and_append_is_one_argument() {
        let argv = args(&config(Accel::Kvm, None));
        let at = |s: &str| argv.iter().position(|a| a == s).unwrap();
        assert_eq!(argv[at("-accel") + 1], "kvm");
        assert_eq!(argv[at("-cpu") + 1], "host");
        assert_eq!(argv[at("-append") + 1], *base_append());
    }

    #[test]
    fn virt_flags_are_whole_words() {
        assert!(has_virt_flag("processor: 0\nflags\t\t: fpu vme vmx sse\n"));
        assert!(has_virt_flag("flags : svm\n"));
        assert!(!has_virt_flag("flags : fpu vmxe svm2\nmodel name : svm\n"));
    }
}
