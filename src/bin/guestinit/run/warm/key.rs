//! What a machine's state is made of, as two digests. The slot names the
//! machine as the user set it up (QEMU's arguments, the kernel's path, the
//! QEMU binary's path): one file per slot. The parts are what can change
//! under the same setup (the kernel image, the base archive: the init, its
//! modules, the kernel's config; the QEMU binary): a snapshot whose parts
//! differ is stale, and says which part changed.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::cache::identity;

/// Bumped when the snapshot's meaning changes (what the host hands over,
/// where the init stops): older snapshots are then other slots.
const FORMAT: &str = concat!("guestinit snapshot 1, host ", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    pub kernel: [u8; 32],
    pub base: [u8; 32],
    pub qemu: [u8; 32],
}

impl Parts {
    /// The first part that differs from `other`, by name.
    pub fn changed(&self, other: &Parts) -> Option<&'static str> {
        [
            (self.kernel != other.kernel, "kernel"),
            (self.base != other.base, "base archive"),
            (self.qemu != other.qemu, "QEMU"),
        ]
        .into_iter()
        .find_map(|(differs, name)| differs.then_some(name))
    }
}

#[derive(Clone, Debug)]
pub struct Key {
    pub slot: [u8; 32],
    pub parts: Parts,
}

/// The key of a machine booted with `argv` (without `-incoming`) from
/// `kernel` and the base archive `base`, by the QEMU at `qemu`.
pub fn of(argv: &[OsString], kernel: &Path, base: &[u8], qemu: &Path) -> io::Result<Key> {
    let mut slot = Sha256::new();
    slot.update(FORMAT);
    slot.update(qemu.as_os_str().as_bytes());
    for arg in normalized(argv) {
        slot.update((arg.len() as u64).to_le_bytes());
        slot.update(&arg);
    }
    let file_identity = |path: &Path| -> io::Result<[u8; 32]> {
        Ok(Sha256::digest(identity(&fs::metadata(path)?)).into())
    };
    Ok(Key {
        slot: slot.finalize().into(),
        parts: Parts {
            kernel: file_identity(kernel)?,
            base: Sha256::digest(base).into(),
            qemu: file_identity(qemu)?,
        },
    })
}

/// The arguments with what differs from run to run of one machine taken
/// out: the descriptor numbers of the links (`fd=N`), the archive's
/// `/dev/fd/N` (its bytes are a part instead), and `page_offset_base`'s
/// offset, which the first run of a kernel learns (and which only saves
/// the init a scan: the KADR it sends is the same).
fn normalized(argv: &[OsString]) -> impl Iterator<Item = Vec<u8>> + '_ {
    argv.iter().map(|arg| {
        let bytes = arg.as_bytes();
        if bytes.starts_with(b"/dev/fd/") {
            return b"/dev/fd/N".to_vec();
        }
        let bytes = without_value(bytes, b" guestinit.pob=", |b| b.is_ascii_hexdigit(), b"");
        without_value(&bytes, b"fd=", |b| b.is_ascii_digit(), b"fd=N")
    })
}

/// `bytes` with each `key` and the run of `value` bytes after it replaced
/// by `with`.
fn without_value(bytes: &[u8], key: &[u8], value: impl Fn(&u8) -> bool, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, key) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + key.len()..];
        let len = rest.iter().take_while(|b| value(b)).count();
        rest = &rest[len..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn descriptor_numbers_do_not_change_the_slot_but_any_setting_does() {
        let dir = std::env::temp_dir().join(format!("guestinit-key-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let kernel = dir.join("vmlinuz");
        let qemu = dir.join("qemu");
        fs::write(&kernel, b"k").unwrap();
        fs::write(&qemu, b"q").unwrap();
        let base = [
            "-m",
            "256",
            "-chardev",
            "socket,id=com1,fd=6",
            "-initrd",
            "/dev/fd/9",
        ];
        let key = |list: &[&str]| of(&args(list), &kernel, b"base", &qemu).unwrap();
        let one = key(&base);
        let renumbered = key(&[
            "-m",
            "256",
            "-chardev",
            "socket,id=com1,fd=17",
            "-initrd",
            "/dev/fd/3",
        ]);
        assert_eq!(one.slot, renumbered.slot);
        let line = |pob: &str| {
            let append = format!("panic=-1 guestinit.ack{pob} quiet");
            of(&args(&["-append", &append]), &kernel, b"base", &qemu)
                .unwrap()
                .slot
        };
        assert_eq!(line(""), line(" guestinit.pob=1398480"));
        assert_ne!(line(""), line(" loglevel=7"));
        assert_eq!(one.parts, renumbered.parts);
        for other in [
            &[
                "-m",
                "320",
                "-chardev",
                "socket,id=com1,fd=6",
                "-initrd",
                "/dev/fd/9",
            ][..],
            &[
                "-m",
                "256",
                "-chardev",
                "socket,id=com2,fd=6",
                "-initrd",
                "/dev/fd/9",
            ],
            &[
                "-m",
                "256",
                "-chardev",
                "socket,id=com1,fd=6",
                "-initrd",
                "/dev/fd/9",
                "-smp",
                "2",
            ],
        ] {
            assert_ne!(key(other).slot, one.slot, "{other:?}");
        }
        let other_base = of(&args(&base), &kernel, b"base 2", &qemu).unwrap();
        assert_eq!(other_base.slot, one.slot);
        assert_eq!(other_base.parts.changed(&one.parts), Some("base archive"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&kernel, b"j").unwrap();
        assert_eq!(key(&base).parts.changed(&one.parts), Some("kernel"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
