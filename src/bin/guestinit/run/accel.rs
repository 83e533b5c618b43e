//! KVM or TCG: KVM only when the host can really run a guest under it.
//! `/dev/kvm` opening is not enough: in a nested VM it may open and even
//! answer KVM_GET_API_VERSION while the CPU has no VMX/SVM to give, and
//! QEMU then fails (`failed to set MSR 0x10a`) or crawls.

use std::ffi::CStr;
use std::fs;

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{self, Ioctl, IoctlOutput, Opcode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// How TCG runs the vCPUs: one host thread each (MTTCG), or all in one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcgThread {
    Multi,
    Single,
}

/// The first QEMU whose MTTCG this project trusts with a Linux guest.
/// QEMU 7.2 (Debian 12's) races on code that one vCPU patches while
/// another runs it: the kernel's live patching of static keys (text_poke
/// with int3) then crashes it with "Oops: int3" now and then, as it did
/// in this project's CI when a sched_ext scheduler was killed (the same
/// crash is rhbz 2216496, reported on 8.0). One thread runs the vCPUs in
/// turn, where no such race exists.
const MTTCG_TRUSTED: (u32, u32) = (8, 1);

/// Single-threaded TCG below [`MTTCG_TRUSTED`] or when the version is
/// unknown (a guest that crashes is worse than a slower one).
pub fn tcg_thread(qemu_version: Option<(u32, u32)>) -> TcgThread {
    match qemu_version {
        Some(version) if version >= MTTCG_TRUSTED => TcgThread::Multi,
        _ => TcgThread::Single,
    }
}

/// QEMU's `major.minor`, asked of the binary the run will start (a few
/// milliseconds); `None` when it does not answer.
pub fn qemu_version(qemu: &str) -> Option<(u32, u32)> {
    // Cached by the binary's identity: a spawn of QEMU costs a warm run
    // some tens of ms.
    let binary = crate::locate::on_path(std::ffi::OsStr::new(qemu))?;
    let meta = std::fs::metadata(&binary).ok()?;
    let entry = crate::cache::Entry::new("qemu-version", &crate::cache::identity(&meta));
    if let Some(known) = entry.as_ref().and_then(|e| parse_version(&e.load()?)) {
        return Some(known);
    }
    let out = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text)?;
    if let Some(entry) = entry {
        entry.store(text.lines().next().unwrap_or_default());
    }
    Some(version)
}

/// `major.minor` of `qemu-system-x86_64 --version`'s first line
/// ("QEMU emulator version 7.2.22 (Debian ...)").
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().next()?;
    let number = line
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The only KVM API version there has ever been (linux/kvm.h).
const KVM_API_VERSION: i32 = 12;

/// KVM when /dev/kvm opens read-write, answers KVM_GET_API_VERSION with 12,
/// and the CPU has VMX or SVM; else TCG.
pub fn detect() -> Accel {
    let api = open_rw(c"/dev/kvm").and_then(|kvm| api_version(&kvm));
    let cpu_has_virt = fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| has_virt_flag(&c));
    choose(api, cpu_has_virt)
}

fn choose(api_version: Option<i32>, cpu_has_virt: bool) -> Accel {
    if api_version == Some(KVM_API_VERSION) && cpu_has_virt {
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

/// KVM_GET_API_VERSION (`_IO(0xAE, 0x00)`): no argument, the version is
/// the ioctl's return value.
struct GetApiVersion;

#[allow(unsafe_code, reason = "rustix's Ioctl is unsafe to implement")]
// SAFETY: the ioctl takes no argument (as_ptr is null and never read) and
// writes no memory; its output is the return value alone.
unsafe impl Ioctl for GetApiVersion {
    type Output = i32;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        ioctl::opcode::none(0xAE, 0x00)
    }

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> rustix::io::Result<i32> {
        Ok(out)
    }
}

/// Opened with rustix, whose descriptors its ioctl takes (the crate is built
/// without `std`, so std's File does not convert).
fn open_rw(path: &CStr) -> Option<OwnedFd> {
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).ok()
}

#[allow(unsafe_code, reason = "rustix's ioctl() is unsafe to call")]
fn api_version(kvm: &OwnedFd) -> Option<i32> {
    // SAFETY: GetApiVersion describes KVM_GET_API_VERSION exactly (see its
    // impl); on a descriptor that is not /dev/kvm the ioctl fails (ENOTTY).
    unsafe { ioctl::ioctl(kvm, GetApiVersion) }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_needs_api_version_12_and_a_virtualizing_cpu() {
        assert_eq!(choose(Some(12), true), Accel::Kvm);
        // This machine: /dev/kvm opens and answers 12, the CPU has no VMX/SVM.
        assert_eq!(choose(Some(12), false), Accel::Tcg);
        assert_eq!(choose(Some(11), true), Accel::Tcg);
        assert_eq!(choose(None, true), Accel::Tcg);
        assert_eq!(choose(None, false), Accel::Tcg);
    }

    #[test]
    fn tcg_runs_one_thread_below_qemu_8_1_or_when_the_version_is_unknown() {
        let debian12 = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright";
        assert_eq!(parse_version(debian12), Some((7, 2)));
        assert_eq!(
            parse_version("QEMU emulator version 10.1.0\n"),
            Some((10, 1))
        );
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(tcg_thread(Some((7, 2))), TcgThread::Single);
        assert_eq!(tcg_thread(Some((8, 0))), TcgThread::Single);
        assert_eq!(tcg_thread(Some((8, 1))), TcgThread::Multi);
        assert_eq!(tcg_thread(Some((10, 1))), TcgThread::Multi);
        assert_eq!(tcg_thread(None), TcgThread::Single);
    }

    #[test]
    fn virt_flags_are_whole_words() {
        assert!(has_virt_flag("processor: 0\nflags\t\t: fpu vme vmx sse\n"));
        assert!(has_virt_flag("flags : svm\n"));
        assert!(!has_virt_flag("flags : fpu vmxe svm2\nmodel name : svm\n"));
    }

    #[test]
    fn a_file_that_is_not_kvm_has_no_api_version() {
        let not_kvm = open_rw(c"/dev/null").unwrap();
        assert_eq!(api_version(&not_kvm), None);
    }
}
