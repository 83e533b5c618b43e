//! PVH entry: QEMU boots an ELF vmlinux that has a PVH note by jumping to
//! it in 32-bit mode, with no real-mode setup and no decompression in the
//! guest (under TCG the guest's LZ4 decompressor alone is some 0.1 s of
//! emulated code a boot). The ELF is taken out of the bzImage once per
//! image file, into `<cache>/vmlinux/`, keyed by the image's identity as
//! `pob_cache` is. Nothing here is an error: a kernel whose ELF cannot be
//! had, or has no note, boots as the bzImage it is.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use guestinit::parse::elf_note;
use guestinit::parse::kernel_image::{self, Codec, Payload};

use crate::cache::{self, Entry};

/// The cache's kind for extracted kernels.
const KIND: &str = "vmlinux";

/// No vmlinux is larger (Debian's are 50-60 MiB): a header that claims
/// more is not believed, so a malformed image cannot make the host
/// allocate gigabytes.
const MAX_VMLINUX: usize = 512 << 20;

/// What `-kernel` boots for `image`: its vmlinux by PVH when it has one
/// (extracted now on the first run of this image file), else `None`, and
/// the image itself boots.
pub fn vmlinux(image: &Path) -> Option<PathBuf> {
    let key = cache::identity(&fs::metadata(image).ok()?);
    let entry = Entry::new(KIND, &key)?;
    if let Ok(meta) = fs::metadata(entry.path()) {
        // An empty entry: this image was looked at and has no PVH ELF.
        return (meta.len() > 0).then(|| entry.path().to_owned());
    }
    let elf = fs::read(image).ok().and_then(|bytes| extract(&bytes));
    let stored = entry.store_bytes(elf.as_deref().unwrap_or_default());
    elf.filter(|_| stored).map(|_| entry.path().to_owned())
}

/// The GNU build-id of the ELF at `path` (an extracted vmlinux), read from
/// its note segments alone: what the guest's KBID is checked against.
pub fn build_id(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    /// The ELF header and program headers are in the file's first page;
    /// a note segment is a few hundred bytes.
    const HEAD: usize = 4096;
    const NOTES_MAX: usize = 64 << 10;
    let file = fs::File::open(path).ok()?;
    let mut head = vec![0u8; HEAD];
    let len = file.read_at(&mut head, 0).ok()?;
    head.truncate(len);
    let ranges: Vec<_> = kernel_image::note_ranges(&head)?.collect();
    ranges.into_iter().find_map(|(offset, size)| {
        let mut notes = vec![0u8; size.min(NOTES_MAX)];
        file.read_exact_at(&mut notes, offset as u64).ok()?;
        elf_note::gnu_build_id(&notes).map(<[u8]>::to_vec)
    })
}

/// The vmlinux inside a bzImage, when it decompresses to the size the
/// image says and has a PVH entry.
pub fn extract(image: &[u8]) -> Option<Vec<u8>> {
    let payload = kernel_image::payload(image)?;
    let elf = decompress(&payload)?;
    kernel_image::pvh_entry(&elf).map(|_| elf)
}

/// The payload decompressed, exactly `payload.size` bytes of it. The
/// codecs Debian and the distributions use; LZMA, bzip2 and LZO images
/// boot as bzImages.
fn decompress(payload: &Payload<'_>) -> Option<Vec<u8>> {
    let size = usize::try_from(payload.size)
        .ok()
        .filter(|&s| s <= MAX_VMLINUX)?;
    let data = payload.data;
    match payload.codec {
        Codec::Lz4Legacy => lz4_legacy(data, size),
        Codec::Gzip => read_exactly(flate2::read::GzDecoder::new(data), size),
        Codec::Xz => read_exactly(lzma_rust2::XzReader::new(data, false), size),
        Codec::Zstd => read_exactly(ruzstd::decoding::StreamingDecoder::new(data).ok()?, size),
        Codec::Uncompressed => (data.len() == size).then(|| data.to_vec()),
        Codec::Lzma | Codec::Bzip2 | Codec::Lzo => None,
    }
}

/// `size` bytes from `reader`, and not one more.
fn read_exactly(reader: impl Read, size: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(size);
    let limit = u64::try_from(size).ok()?.checked_add(1)?;
    reader.take(limit).read_to_end(&mut out).ok()?;
    (out.len() == size).then_some(out)
}

/// LZ4's legacy frame (`lz4 -l`, the kernel's `unlz4`): the magic, then
/// blocks, each its compressed length and at most 8 MiB once
/// decompressed; a repeated magic starts a concatenated frame. It has no
/// end mark, so the payload's size says when it is done.
fn lz4_legacy(data: &[u8], size: usize) -> Option<Vec<u8>> {
    const MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
    const BLOCK: usize = 8 << 20;
    let mut input = data.strip_prefix(&MAGIC)?;
    let mut out = vec![0u8; size];
    let mut done = 0;
    // Each pass consumes input, so the loop ends on any bytes.
    while done < size {
        let (length, rest) = input.split_first_chunk::<4>()?;
        if *length == MAGIC {
            input = rest;
            continue;
        }
        let length = usize::try_from(u32::from_le_bytes(*length)).ok()?;
        let (block, rest) = rest.split_at_checked(length)?;
        let room = out.get_mut(done..size.min(done.saturating_add(BLOCK)))?;
        done += lz4_flex::block::decompress_into(block, room).ok()?;
        input = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An x86_64 ELF of `len` bytes whose one PT_NOTE holds the PVH note
    /// and a build-id of twenty 0x5a bytes.
    fn pvh_elf(len: usize) -> Vec<u8> {
        let mut e = vec![0u8; len.max(0x100)];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[0x12] = 62;
        e[0x20] = 0x40; // e_phoff
        e[0x36] = 0x38; // e_phentsize
        e[0x38] = 1; // e_phnum
        e[0x40] = 4; // PT_NOTE
        e[0x48] = 0x80; // p_offset
        e[0x60] = 60; // p_filesz
        let note = [
            &4u32.to_le_bytes()[..],
            &8u32.to_le_bytes(),
            &18u32.to_le_bytes(),
            b"Xen\0",
        ];
        e[0x80..0x90].copy_from_slice(&note.concat());
        e[0x90..0x98].copy_from_slice(&0x100_0000u64.to_le_bytes());
        let id = [
            &4u32.to_le_bytes()[..],
            &20u32.to_le_bytes(),
            &3u32.to_le_bytes(),
            b"GNU\0",
            &[0x5a; 20],
        ];
        e[0x98..0xbc].copy_from_slice(&id.concat());
        for (i, b) in e.iter_mut().enumerate().skip(0x100) {
            *b = (i % 251) as u8;
        }
        e
    }

    /// A bzImage (39 setup sectors) around `payload`, the size appended.
    fn bzimage(payload: &[u8], size: usize) -> Vec<u8> {
        let mut image = vec![0u8; 40 * 512];
        image[0x1f1] = 39;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        let length = (payload.len() + 4) as u32;
        image[0x24c..0x250].copy_from_slice(&length.to_le_bytes());
        image.extend_from_slice(payload);
        image.extend_from_slice(&(size as u32).to_le_bytes());
        image
    }

    /// `elf` as `lz4 -l` frames it: blocks of `block` bytes.
    fn lz4_frame(elf: &[u8], block: usize) -> Vec<u8> {
        let mut out = vec![0x02, 0x21, 0x4c, 0x18];
        for chunk in elf.chunks(block) {
            let compressed = lz4_flex::block::compress(chunk);
            out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
            out.extend_from_slice(&compressed);
        }
        out
    }

    #[test]
    fn the_build_id_is_read_from_the_files_note_segment() {
        let dir = std::env::temp_dir().join(format!("guestinit-pvh-id-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vmlinux");
        fs::write(&path, pvh_elf(20_000)).unwrap();
        assert_eq!(build_id(&path), Some(vec![0x5a; 20]));
        fs::write(&path, b"not an ELF").unwrap();
        assert_eq!(build_id(&path), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_lz4_image_gives_its_elf() {
        let elf = pvh_elf(20_000);
        let image = bzimage(&lz4_frame(&elf, 8 << 20), elf.len());
        assert!(extract(&image) == Some(elf.clone()));
        // A second frame after a repeated magic.
        let mut two = lz4_frame(&elf[..10_000], 8 << 20);
        two.extend_from_slice(&lz4_frame(&elf[10_000..], 8 << 20));
        assert!(extract(&bzimage(&two, elf.len())) == Some(elf));
    }

    #[test]
    fn a_gzip_image_gives_its_elf_and_an_uncompressed_one_is_itself() {
        let elf = pvh_elf(5_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let image = bzimage(&gz.finish().unwrap(), elf.len());
        assert!(extract(&image) == Some(elf.clone()));
        assert!(extract(&bzimage(&elf, elf.len())) == Some(elf));
    }

    #[test]
    fn a_wrong_size_a_cut_stream_or_no_note_gives_nothing() {
        let elf = pvh_elf(20_000);
        let frame = lz4_frame(&elf, 8 << 20);
        assert!(extract(&bzimage(&frame, elf.len() + 1)).is_none());
        assert!(extract(&bzimage(&frame, elf.len() - 1)).is_none());
        assert!(extract(&bzimage(&frame[..frame.len() - 9], elf.len())).is_none());
        assert!(extract(&bzimage(&frame, usize::MAX >> 32)).is_none());
        let mut plain = elf.clone();
        plain[0x88] = 6; // the note's type: not PHYS32_ENTRY
        assert!(extract(&bzimage(&lz4_frame(&plain, 8 << 20), plain.len())).is_none());
        assert!(extract(b"not a kernel").is_none());
    }

    #[test]
    fn garbage_blocks_never_panic() {
        let elf = pvh_elf(4_096);
        let frame = lz4_frame(&elf, 1_024);
        for i in 4..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0xa5;
            let _ = extract(&bzimage(&bad, elf.len()));
        }
    }

    #[test]
    fn the_real_kernels_have_a_pvh_elf() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache");
        let images = [
            root.join("kernel/boot"),
            root.join("kernel-sid/usr/lib/modules"),
        ];
        for dir in images {
            let Some(image) = walk(&dir) else {
                eprintln!("no kernel under {}: skipped", dir.display());
                continue;
            };
            let elf = extract(&fs::read(&image).unwrap()).expect("a PVH ELF");
            assert!(elf.starts_with(b"\x7fELF"), "{}", image.display());
        }
    }

    /// The first `vmlinuz*` file under `dir`, two levels deep at most.
    fn walk(dir: &Path) -> Option<PathBuf> {
        let entries: Vec<_> = fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries
            .iter()
            .find(|p| p.is_file() && p.to_string_lossy().contains("vmlinuz"))
            .cloned()
            .or_else(|| entries.iter().filter(|p| p.is_dir()).find_map(|d| walk(d)))
    }
}
