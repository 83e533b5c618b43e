//! Which filesystem a disk holds, from the magic bytes of its superblock.
//! The init reads a data disk's bytes (untrusted: any image a user passes)
//! to choose the type to mount it as; the host reads them to choose the
//! kernel modules to pack and to check what `mkdisk` made. Bytes are read
//! through a callback at fixed offsets, so neither side needs a buffer the
//! size of the 64 KiB that btrfs's superblock lies behind.

/// A filesystem the init can mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fs {
    /// ext2, ext3 or ext4: one magic, and the ext4 driver mounts all three.
    Ext,
    Btrfs,
    Xfs,
    Vfat,
}

/// Bytes that must be found at an offset.
struct Probe {
    offset: u64,
    magic: &'static [u8],
}

const fn at(offset: u64, magic: &'static [u8]) -> Probe {
    Probe { offset, magic }
}

/// The boot sector's signature, which every FAT has.
const BOOT_SIGNATURE: Probe = at(510, &[0x55, 0xAA]);

/// Each filesystem's signatures: every probe of one signature must match.
/// FAT12/16 name their type at byte 54 of the boot sector, FAT32 at 82.
const SIGNATURES: [(Fs, &[Probe]); 5] = [
    (Fs::Xfs, &[at(0, b"XFSB")]),
    (Fs::Btrfs, &[at(0x10040, b"_BHRfS_M")]),
    (Fs::Ext, &[at(1080, &[0x53, 0xEF])]),
    (Fs::Vfat, &[at(82, b"FAT32   "), BOOT_SIGNATURE]),
    (Fs::Vfat, &[at(54, b"FAT1"), BOOT_SIGNATURE]),
];

/// The longest magic in [`SIGNATURES`].
const MAX_MAGIC: usize = 8;

impl Fs {
    /// The type `mount(2)` takes.
    pub fn mount_type(self) -> &'static str {
        match self {
            Fs::Ext => "ext4",
            Fs::Btrfs => "btrfs",
            Fs::Xfs => "xfs",
            Fs::Vfat => "vfat",
        }
    }

    /// The filesystem a `mkfs` type names (`ext2`, `ext3`, `ext4`, `btrfs`,
    /// `xfs`, `vfat`).
    pub fn from_name(name: &[u8]) -> Option<Fs> {
        match name {
            b"ext2" | b"ext3" | b"ext4" => Some(Fs::Ext),
            b"btrfs" => Some(Fs::Btrfs),
            b"xfs" => Some(Fs::Xfs),
            b"vfat" => Some(Fs::Vfat),
            _ => None,
        }
    }

    /// Whether the disk carries this filesystem's magic. `read_at(offset,
    /// buf)` fills `buf` from the disk and says whether it could.
    pub fn found_in(self, read_at: &mut impl FnMut(u64, &mut [u8]) -> bool) -> bool {
        SIGNATURES
            .iter()
            .filter(|(fs, _)| *fs == self)
            .any(|(_, probes)| probes.iter().all(|p| matches(p, read_at)))
    }
}

/// The filesystem whose magic the disk carries, if any (see [`Fs::found_in`]).
pub fn detect(mut read_at: impl FnMut(u64, &mut [u8]) -> bool) -> Option<Fs> {
    SIGNATURES
        .iter()
        .find(|(_, probes)| probes.iter().all(|p| matches(p, &mut read_at)))
        .map(|(fs, _)| *fs)
}

fn matches(probe: &Probe, read_at: &mut impl FnMut(u64, &mut [u8]) -> bool) -> bool {
    let mut buf = [0u8; MAX_MAGIC];
    let buf = &mut buf[..probe.magic.len()];
    read_at(probe.offset, buf) && buf == probe.magic
}

/// A `read_at` over bytes in memory: an image's first bytes.
pub fn read_from(image: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
    move |offset, buf| {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| image.get(start..start.checked_add(buf.len())?));
        match bytes {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Bytes to place at an offset of a test image.
    type Pieces<'a> = &'a [(usize, &'a [u8])];

    fn image_with(pieces: Pieces<'_>) -> Vec<u8> {
        let mut image = vec![0u8; 0x11000];
        for (offset, bytes) in pieces {
            image[*offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        image
    }

    #[test]
    fn each_filesystem_is_told_by_its_magic() {
        let cases: [(Pieces<'_>, Fs); 5] = [
            (&[(1080, &[0x53, 0xEF])], Fs::Ext),
            (&[(0x10040, b"_BHRfS_M")], Fs::Btrfs),
            (&[(0, b"XFSB")], Fs::Xfs),
            (&[(82, b"FAT32   "), (510, &[0x55, 0xAA])], Fs::Vfat),
            (&[(54, b"FAT16   "), (510, &[0x55, 0xAA])], Fs::Vfat),
        ];
        for (pieces, fs) in cases {
            let image = image_with(pieces);
            assert_eq!(detect(read_from(&image)), Some(fs), "{pieces:?}");
            assert!(fs.found_in(&mut read_from(&image)));
        }
    }

    #[test]
    fn zeros_garbage_a_short_image_and_half_a_signature_are_nothing() {
        assert_eq!(detect(read_from(&image_with(&[]))), None);
        let garbage: Vec<u8> = (0..0x11000u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(detect(read_from(&garbage)), None);
        // The ext magic's first byte only, and an image cut before it.
        assert_eq!(detect(read_from(&image_with(&[(1080, &[0x53])]))), None);
        let ext = image_with(&[(1080, &[0x53, 0xEF])]);
        assert_eq!(detect(read_from(&ext[..1081])), None);
        // A FAT type name without the boot sector's signature.
        assert_eq!(detect(read_from(&image_with(&[(82, b"FAT32   ")]))), None);
    }

    #[test]
    fn an_ext_image_does_not_pass_for_btrfs() {
        let ext = image_with(&[(1080, &[0x53, 0xEF])]);
        assert!(!Fs::Btrfs.found_in(&mut read_from(&ext)));
    }

    #[test]
    fn mkfs_names_map_to_their_mount_types() {
        for (name, mount) in [
            ("ext2", "ext4"),
            ("ext4", "ext4"),
            ("btrfs", "btrfs"),
            ("vfat", "vfat"),
        ] {
            assert_eq!(
                Fs::from_name(name.as_bytes()).map(Fs::mount_type),
                Some(mount)
            );
        }
        assert_eq!(Fs::from_name(b"ntfs"), None);
    }
}
