//! An x86 bzImage's compressed kernel, and the PVH entry of an ELF
//! vmlinux. The host boots the uncompressed ELF by its PVH entry when it
//! has one (no real-mode setup, no decompression in the guest), taking it
//! out of the bzImage once per kernel. The image is any file a user gives,
//! so every offset is checked: a malformed one is `None`, never a panic.

/// How the kernel's payload is compressed (`CONFIG_KERNEL_*`), by magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Xz,
    Zstd,
    /// LZ4's legacy frame, the one the kernel's `unlz4` reads.
    Lz4Legacy,
    Lzma,
    Bzip2,
    Lzo,
    /// `CONFIG_KERNEL_UNCOMPRESSED`: the ELF itself.
    Uncompressed,
}

/// Each codec's magic at the payload's start.
const MAGICS: [(Codec, &[u8]); 8] = [
    (Codec::Gzip, &[0x1f, 0x8b]),
    (Codec::Xz, &[0xfd, b'7', b'z', b'X', b'Z', 0]),
    (Codec::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
    (Codec::Lz4Legacy, &[0x02, 0x21, 0x4c, 0x18]),
    (Codec::Lzma, &[0x5d, 0, 0]),
    (Codec::Bzip2, b"BZh"),
    (Codec::Lzo, &[0x89, b'L', b'Z', b'O']),
    (Codec::Uncompressed, ELF_MAGIC),
];

use super::elf_note;

const ELF_MAGIC: &[u8] = &[0x7f, b'E', b'L', b'F'];

/// The compressed kernel inside a bzImage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    pub codec: Codec,
    /// The compressed bytes, without the size the build appends.
    pub data: &'a [u8],
    /// The uncompressed vmlinux's size: the payload's last four bytes
    /// (the kernel's `size_append`, for every codec).
    pub size: u32,
}

/// The setup header's fields (Documentation/arch/x86/boot.rst).
const SETUP_SECTS: usize = 0x1f1;
const HEADER_MAGIC: usize = 0x202;
const VERSION: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
/// The boot protocol that added `payload_offset` and `payload_length`.
const PAYLOAD_PROTOCOL: u16 = 0x208;

/// The payload of a bzImage: after the real-mode setup (`setup_sects`
/// sectors, 4 when 0, and the boot sector) at `payload_offset`,
/// `payload_length` bytes whose last four are the uncompressed size.
pub fn payload(image: &[u8]) -> Option<Payload<'_>> {
    if image.get(HEADER_MAGIC..HEADER_MAGIC + 4)? != b"HdrS"
        || u16_at(image, VERSION)? < PAYLOAD_PROTOCOL
    {
        return None;
    }
    let sects = match *image.get(SETUP_SECTS)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (sects + 1)
        .checked_mul(512)?
        .checked_add(usize::try_from(u32_at(image, PAYLOAD_OFFSET)?).ok()?)?;
    let length = usize::try_from(u32_at(image, PAYLOAD_LENGTH)?).ok()?;
    let whole = image.get(start..start.checked_add(length)?)?;
    let (data, size) = whole.split_at_checked(whole.len().checked_sub(4)?)?;
    let codec = MAGICS
        .iter()
        .find(|(_, magic)| data.starts_with(magic))
        .map(|(codec, _)| *codec)?;
    Some(Payload {
        codec,
        data,
        size: u32::from_le_bytes(size.try_into().ok()?),
    })
}

/// The ELF header's and a program header's fields (ELF64, little-endian).
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const E_MACHINE: usize = 0x12;
const E_PHOFF: usize = 0x20;
const E_PHENTSIZE: usize = 0x36;
const E_PHNUM: usize = 0x38;
const EM_X86_64: u16 = 62;
const PT_NOTE: u32 = 4;
const P_OFFSET: usize = 0x08;
const P_FILESZ: usize = 0x20;
const PHDR_SIZE: usize = 0x38;

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical entry a PVH loader
/// (QEMU's `-kernel` of an ELF) jumps to.
const PHYS32_ENTRY: u32 = 18;

/// The PVH entry of an x86_64 ELF, from the "Xen" note of type 18 in its
/// PT_NOTE segments: what QEMU needs to boot it (else it refuses the ELF).
/// Linux writes it as a pointer: 8 bytes, or 4.
pub fn pvh_entry(elf: &[u8]) -> Option<u64> {
    note_segments(elf)?
        .flat_map(elf_note::notes)
        .find(|n| n.name == b"Xen\0" && n.kind == PHYS32_ENTRY)
        .and_then(|n| match n.value.len() {
            4 => u32_at(n.value, 0).map(u64::from),
            8 => u64_at(n.value, 0),
            _ => None,
        })
}

/// The GNU build-id of an x86_64 ELF vmlinux (what the booted kernel's
/// KBID frame is checked against).
pub fn build_id(elf: &[u8]) -> Option<&[u8]> {
    note_segments(elf)?.find_map(elf_note::gnu_build_id)
}

/// The bytes of each PT_NOTE segment of an x86_64 little-endian ELF.
fn note_segments(elf: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    Some(note_ranges(elf)?.filter_map(|(offset, size)| elf.get(offset..offset.checked_add(size)?)))
}

/// Where each PT_NOTE segment of an x86_64 little-endian ELF lies in its
/// file, as (offset, size), read from `head`: the file's start, with the
/// program headers (a reader of a 60 MiB vmlinux reads those, not it).
pub fn note_ranges(head: &[u8]) -> Option<impl Iterator<Item = (usize, usize)> + '_> {
    if !head.starts_with(ELF_MAGIC)
        || head.get(EI_CLASS) != Some(&2)
        || head.get(EI_DATA) != Some(&1)
        || u16_at(head, E_MACHINE)? != EM_X86_64
    {
        return None;
    }
    let phoff = usize::try_from(u64_at(head, E_PHOFF)?).ok()?;
    let entsize = usize::from(u16_at(head, E_PHENTSIZE)?);
    if entsize < PHDR_SIZE {
        return None;
    }
    let ranges = (0..usize::from(u16_at(head, E_PHNUM)?))
        .filter_map(move |i| head.get(phoff.checked_add(i.checked_mul(entsize)?)?..))
        .filter(|phdr| u32_at(phdr, 0) == Some(PT_NOTE))
        .filter_map(|phdr| {
            let offset = usize::try_from(u64_at(phdr, P_OFFSET)?).ok()?;
            let size = usize::try_from(u64_at(phdr, P_FILESZ)?).ok()?;
            Some((offset, size))
        });
    Some(ranges)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::elf_note::tests::note;

    /// A bzImage of `sects` setup sectors whose payload (at `offset` past
    /// the setup) is `data` and the size `size`.
    fn bzimage(sects: u8, offset: u32, data: &[u8], size: u32) -> Vec<u8> {
        let setup = (usize::from(if sects == 0 { 4 } else { sects }) + 1) * 512;
        let mut image = vec![0u8; setup + offset as usize];
        image[SETUP_SECTS] = sects;
        image[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        image[VERSION..VERSION + 2].copy_from_slice(&0x20fu16.to_le_bytes());
        image[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&offset.to_le_bytes());
        let length = data.len() as u32 + 4;
        image[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&length.to_le_bytes());
        image.extend_from_slice(data);
        image.extend_from_slice(&size.to_le_bytes());
        image.extend_from_slice(b"trailing setup data");
        image
    }

    #[test]
    fn the_payload_is_found_after_the_setup_with_its_codec_and_size() {
        let lz4 = [0x02, 0x21, 0x4c, 0x18, 1, 2, 3];
        let image = bzimage(39, 716, &lz4, 53_243_444);
        let want = Payload {
            codec: Codec::Lz4Legacy,
            data: &lz4,
            size: 53_243_444,
        };
        assert_eq!(payload(&image), Some(want));
        // setup_sects 0 means 4.
        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 9];
        assert_eq!(
            payload(&bzimage(0, 0, &zstd, 7)).unwrap().codec,
            Codec::Zstd
        );
        assert_eq!(
            payload(&bzimage(4, 8, b"\x1f\x8b..", 7)).unwrap().codec,
            Codec::Gzip
        );
    }

    #[test]
    fn anything_else_is_no_payload() {
        let good = bzimage(39, 716, &[0x1f, 0x8b, 0], 1);
        // An unknown codec, an old protocol, no header, a length past the end.
        assert_eq!(payload(&bzimage(39, 716, b"what", 1)), None);
        let mut old = good.clone();
        old[VERSION..VERSION + 2].copy_from_slice(&0x207u16.to_le_bytes());
        assert_eq!(payload(&old), None);
        let mut plain = good.clone();
        plain[HEADER_MAGIC] = b'X';
        assert_eq!(payload(&plain), None);
        let mut long = good.clone();
        long[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(payload(&long), None);
        let mut short = good.clone();
        short[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(payload(&short), None);
        for cut in [0, 0x203, 0x24e, 40 * 512] {
            assert_eq!(payload(&good[..cut]), None, "{cut}");
        }
    }

    /// An x86_64 ELF with one PT_LOAD and one PT_NOTE segment of `notes`.
    fn elf(notes: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x40 + 2 * PHDR_SIZE];
        e[..4].copy_from_slice(ELF_MAGIC);
        e[EI_CLASS] = 2;
        e[EI_DATA] = 1;
        e[E_MACHINE..E_MACHINE + 2].copy_from_slice(&EM_X86_64.to_le_bytes());
        e[E_PHOFF..E_PHOFF + 8].copy_from_slice(&0x40u64.to_le_bytes());
        e[E_PHENTSIZE..E_PHENTSIZE + 2].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        e[E_PHNUM..E_PHNUM + 2].copy_from_slice(&2u16.to_le_bytes());
        e[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        let note_phdr = 0x40 + PHDR_SIZE;
        e[note_phdr..note_phdr + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        let at = e.len() as u64;
        e[note_phdr + P_OFFSET..note_phdr + P_OFFSET + 8].copy_from_slice(&at.to_le_bytes());
        let size = notes.len() as u64;
        e[note_phdr + P_FILESZ..note_phdr + P_FILESZ + 8].copy_from_slice(&size.to_le_bytes());
        e.extend_from_slice(notes);
        e
    }

    #[test]
    fn the_pvh_entry_is_the_xen_note_of_type_18() {
        let notes = [
            note(b"Xen\0", 6, b"linux\0"),
            note(b"GNU\0", 18, &[1; 8]),
            note(b"Xen\0", 18, &0x39a_5140u64.to_le_bytes()),
        ]
        .concat();
        assert_eq!(pvh_entry(&elf(&notes)), Some(0x39a_5140));
        let four = note(b"Xen\0", 18, &0x100_0000u32.to_le_bytes());
        assert_eq!(pvh_entry(&elf(&four)), Some(0x100_0000));
    }

    #[test]
    fn an_elf_without_the_note_or_malformed_has_no_entry() {
        assert_eq!(pvh_entry(&elf(&note(b"Xen\0", 6, b"linux\0"))), None);
        assert_eq!(pvh_entry(&elf(&note(b"Xen\0", 18, &[1, 2]))), None);
        let good = elf(&note(b"Xen\0", 18, &[1; 8]));
        let mut bad_size = note(b"Xen\0", 18, &[1; 8]);
        bad_size[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pvh_entry(&elf(&bad_size)), None);
        let mut i386 = good.clone();
        i386[E_MACHINE] = 3;
        assert_eq!(pvh_entry(&i386), None);
        let mut far = good.clone();
        far[E_PHOFF..E_PHOFF + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(pvh_entry(&far), None);
        for cut in 0..good.len() {
            assert_eq!(pvh_entry(&good[..cut]), None, "{cut}");
        }
    }

    #[test]
    fn the_build_id_is_read_from_the_note_segments() {
        let notes = [note(b"Xen\0", 18, &[1; 8]), note(b"GNU\0", 3, &[0xab; 20])].concat();
        assert_eq!(build_id(&elf(&notes)), Some(&[0xab; 20][..]));
        assert_eq!(build_id(&elf(&note(b"Xen\0", 18, &[1; 8]))), None);
    }
}
