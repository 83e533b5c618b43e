//! Properties of the parsers of guest-side inputs, shared by the property
//! tests (tests/parser_props.rs) and the fuzz targets (fuzz/fuzz_targets/).
//! Each takes any bytes and panics when its property fails. Beyond not
//! panicking, each checks its parser against an independent model.

use std::ops::ControlFlow;

use arbitrary::{Arbitrary, Unstructured};
use guestinit::parse::args::{self, ArgsError};
use guestinit::parse::cmdline::Cmdline;
use guestinit::parse::elf_note;
use guestinit::parse::kernel_image::{self, Codec};
use guestinit::parse::lines::LineSplitter;
use guestinit::parse::num::{parse_dec_u64, parse_hex_u64};
use guestinit::parse::shares::{self as share_file, Bad, Share};
use guestinit::parse::superblock::{self, Fs};
use guestinit::parse::{iomem, kallsyms, sched_script};

/// Whether `part` lies within `whole` (parsers return borrowed pieces).
fn within(whole: &[u8], part: &[u8]) -> bool {
    let range = whole.as_ptr_range();
    part.is_empty() || (range.start <= part.as_ptr() && part.as_ptr_range().end <= range.end)
}

/// The lines of a file: `\n` ends each, and a last one may lack it.
fn file_lines(file: &[u8]) -> Vec<&[u8]> {
    terminated(file, b'\n')
}

/// The entries of `file`, each ended by `end` except perhaps the last.
fn terminated(file: &[u8], end: u8) -> Vec<&[u8]> {
    match file.strip_suffix(&[end]).unwrap_or(file) {
        [] if file.is_empty() => vec![],
        body => body.split(|&b| b == end).collect(),
    }
}

type OwnedParam = (Vec<u8>, Option<Vec<u8>>);

/// The kernel's parse_args()/next_arg() (kernel/params.c) transcribed onto
/// a NUL-terminated copy, NUL writes and all: the model for `Cmdline`.
fn kernel_params(text: &[u8]) -> (Vec<OwnedParam>, Option<Vec<u8>>) {
    fn isspace(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
    }
    fn skip_spaces(a: &[u8], mut at: usize) -> usize {
        while isspace(a[at]) {
            at += 1;
        }
        at
    }
    fn cstr(a: &[u8], at: usize) -> Vec<u8> {
        a[at..].iter().take_while(|&&b| b != 0).copied().collect()
    }
    let mut a: Vec<u8> = text.split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
    a.push(0);
    let mut params = Vec::new();
    let mut args = skip_spaces(&a, 0);
    while a[args] != 0 {
        let (mut p, mut in_quote, mut quoted) = (args, false, false);
        if a[p] == b'"' {
            p += 1;
            in_quote = true;
            quoted = true;
        }
        let (mut i, mut equals) = (0, 0);
        while a[p + i] != 0 {
            if isspace(a[p + i]) && !in_quote {
                break;
            }
            if equals == 0 && a[p + i] == b'=' {
                equals = i;
            }
            if a[p + i] == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        let mut val = None;
        if equals != 0 {
            a[p + equals] = 0;
            let mut v = p + equals + 1;
            if a[v] == b'"' {
                v += 1;
                if a[p + i - 1] == b'"' {
                    a[p + i - 1] = 0;
                }
            }
            val = Some(v);
        }
        if quoted && i > 0 && a[p + i - 1] == b'"' {
            a[p + i - 1] = 0;
        }
        let next = if a[p + i] != 0 {
            a[p + i] = 0;
            p + i + 1
        } else {
            p + i
        };
        args = skip_spaces(&a, next);
        let (key, value) = (cstr(&a, p), val.map(|v| cstr(&a, v)));
        if value.is_none() && key == b"--" {
            return (params, Some(cstr(&a, args)));
        }
        params.push((key, value));
    }
    (params, None)
}

/// Cmdline reads what the kernel reads, and `get` finds the last of a key.
pub fn cmdline(text: &[u8]) {
    let line = Cmdline::new(text);
    let got: Vec<OwnedParam> = line
        .iter()
        .inspect(|p| assert!(within(text, p.key) && p.value.is_none_or(|v| within(text, v))))
        .map(|p| (p.key.to_vec(), p.value.map(<[u8]>::to_vec)))
        .collect();
    let (want, after_dashes) = kernel_params(text);
    assert_eq!(got, want);
    assert_eq!(line.after_dashes().map(<[u8]>::to_vec), after_dashes);
    for (key, _) in &got {
        let last = got.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
        assert_eq!(line.get(key).map(|v| v.map(<[u8]>::to_vec)).as_ref(), last);
    }
}

/// `/args` splits at NULs when it holds one, else at newlines, and rejects
/// exactly a missing program.
pub fn args(file: &[u8]) {
    let entries = if file.contains(&0) {
        terminated(file, 0)
    } else {
        terminated(file, b'\n')
    };
    assert_eq!(args::count(file), entries.len());
    match args::split(file) {
        Ok(argv) => {
            let argv: Vec<&[u8]> = argv.collect();
            assert_eq!(argv, entries);
            assert!(!argv[0].is_empty() && argv.iter().all(|a| !a.contains(&0)));
        }
        Err(ArgsError::NoProgram) => assert!(entries.first().is_none_or(|p| p.is_empty())),
    }
}

/// Both `/args` properties on one input: as a file, and as an argv.
pub fn args_any(data: &[u8]) {
    args(data);
    if let Ok(argv) = Vec::<Vec<u8>>::arbitrary_take_rest(Unstructured::new(data)) {
        args_roundtrip(&argv);
    }
}

/// Any argv without NUL and with a program, NUL-terminated, reads back as
/// itself: the format `guestinit pack` writes is lossless.
pub fn args_roundtrip(argv: &[Vec<u8>]) {
    let argv: Vec<Vec<u8>> = argv
        .iter()
        .map(|a| a.iter().copied().filter(|&b| b != 0).collect())
        .collect();
    let file: Vec<u8> = argv
        .iter()
        .flat_map(|a| a.iter().copied().chain([0]))
        .collect();
    match args::split(&file) {
        Ok(got) => assert_eq!(got.collect::<Vec<_>>(), argv),
        Err(ArgsError::NoProgram) => assert!(argv.first().is_none_or(Vec::is_empty)),
    }
}

/// Each script line parses to nothing, a write or an error; a write's path
/// is absolute and plain, and the write re-stated plainly reads the same.
pub fn sched_script(script: &[u8]) {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
    for line in script.split(|&b| b == b'\n') {
        let text = &line[line.iter().take_while(|b| blank(b)).count()..];
        match sched_script::parse_line(line) {
            Ok(None) => assert!(text.is_empty() || text[0] == b'#'),
            Ok(Some(w)) => {
                assert!(text.starts_with(b"echo") && within(line, w.value) && within(line, w.path));
                assert!(w.path.starts_with(b"/") && !w.path.iter().any(blank));
                if !w.value.contains(&b'\'') {
                    let plain = [b"echo '", w.value, b"' > ", w.path].concat();
                    assert_eq!(sched_script::parse_line(&plain), Ok(Some(w)));
                }
            }
            Err(_) => assert!(!text.is_empty() && text[0] != b'#'),
        }
    }
}

/// A parsed kallsyms line is the kernel's format of the symbol read, up to
/// the address's digits.
pub fn kallsyms(file: &[u8]) {
    for line in file.split(|&b| b == b'\n') {
        let Some(sym) = kallsyms::parse_line(line) else {
            continue;
        };
        assert!(within(line, sym.name) && sym.module.is_none_or(|m| within(line, m)));
        let mut text = format!("{:016x} {} ", sym.addr, sym.kind as char).into_bytes();
        text.extend(sym.name);
        if let Some(module) = sym.module {
            text.extend([&b"\t["[..], module, b"]"].concat());
        }
        assert_eq!(kallsyms::parse_line(&text), Some(sym));
        let after_addr = line.iter().position(|&b| b == b' ').unwrap();
        assert_eq!(line[after_addr..], text[16..]);
    }
}

/// A parsed iomem line is the kernel's format of the resource read, up to
/// the addresses' digits.
pub fn iomem(file: &[u8]) {
    for line in file.split(|&b| b == b'\n') {
        let Some(r) = iomem::parse_line(line) else {
            continue;
        };
        assert!(r.start <= r.end && within(line, r.name));
        let indent = " ".repeat(2 * r.depth);
        let mut text = format!("{indent}{:08x}-{:08x} : ", r.start, r.end).into_bytes();
        text.extend(r.name);
        assert_eq!(iomem::parse_line(&text), Some(r));
        assert!(line.starts_with(indent.as_bytes()) && line.ends_with(r.name));
    }
}

/// Number parsing agrees with the standard library's.
pub fn num(s: &[u8]) {
    let std = |radix| {
        let text = std::str::from_utf8(s)
            .ok()
            .filter(|t| !t.starts_with('+'))?;
        u64::from_str_radix(text, radix).ok()
    };
    assert_eq!(parse_hex_u64(s), std(16));
    assert_eq!(parse_dec_u64(s), std(10));
}

/// A stream, how it is cut, and after which line the reader stops.
#[derive(Clone, Debug, Arbitrary)]
pub struct LinesInput {
    pub stop_after: Option<u8>,
    pub cuts: Vec<u16>,
    pub stream: Vec<u8>,
}

/// The splitter passes exactly the file's lines of up to N bytes, counts
/// the others, whatever the chunking; a reader that stops sees a prefix.
pub fn lines(input: &LinesInput) {
    lines_n::<0>(input);
    lines_n::<1>(input);
    lines_n::<7>(input);
    lines_n::<64>(input);
}

fn lines_n<const N: usize>(input: &LinesInput) {
    let all = file_lines(&input.stream);
    let want: Vec<&[u8]> = all.iter().copied().filter(|l| l.len() <= N).collect();
    let mut splitter = LineSplitter::<N>::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut on_line = |line: &[u8]| {
        got.push(line.to_vec());
        match input.stop_after {
            Some(k) if got.len() > usize::from(k) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    };
    let mut rest = &input.stream[..];
    let mut cuts = input.cuts.iter().map(|&c| usize::from(c));
    let mut flow = ControlFlow::Continue(());
    while !rest.is_empty() && flow.is_continue() {
        let (chunk, after) = rest.split_at(cuts.next().unwrap_or(rest.len()).min(rest.len()));
        rest = after;
        flow = splitter.feed(chunk, &mut on_line);
    }
    if flow.is_continue() {
        flow = splitter.finish(&mut on_line);
    }
    if flow.is_break() {
        assert_eq!(got.len(), usize::from(input.stop_after.unwrap()) + 1);
        assert_eq!(got, want[..got.len()]);
    } else {
        assert_eq!(got, want);
        assert_eq!(splitter.overlong(), all.len() - want.len());
    }
}

/// Runs the property of fuzz target `target` on its raw input, decoded as
/// libFuzzer's harness decodes it; `false` if no such target.
/// A disk image's first bytes: the filesystem `superblock::detect` names is
/// the first whose magic bytes a direct comparison finds (xfs, btrfs, ext,
/// then FAT with its boot signature), and `found_in` agrees for each.
pub fn superblock(image: &[u8]) {
    let at = |offset: usize, magic: &[u8]| image.get(offset..offset + magic.len()) == Some(magic);
    let fat = at(510, &[0x55, 0xAA]) && (at(82, b"FAT32   ") || at(54, b"FAT1"));
    let found = [
        (Fs::Xfs, at(0, b"XFSB")),
        (Fs::Btrfs, at(0x10040, b"_BHRfS_M")),
        (Fs::Ext, at(1080, &[0x53, 0xEF])),
        (Fs::Vfat, fat),
    ];
    let model = found.iter().find(|(_, yes)| *yes).map(|(fs, _)| *fs);
    assert_eq!(superblock::detect(superblock::read_from(image)), model);
    for (fs, yes) in found {
        assert_eq!(
            fs.found_in(&mut superblock::read_from(image)),
            yes,
            "{fs:?}"
        );
    }
}

/// Target `shares`: `/.guestinit/shares` on any bytes (the init reads
/// what the host wrote, but a user's `--initramfs` may hold anything)
/// agrees with a model of records of three NUL-ended fields, and the
/// shares it reads write back to a file that reads as the same.
pub fn shares(file: &[u8]) {
    let read: Vec<_> = share_file::split(file).collect();
    // The fields each NUL ends; what follows the last NUL is no field.
    let mut pieces: Vec<&[u8]> = file.split(|&b| b == 0).collect();
    let remainder = pieces.pop().unwrap_or_default();
    let records = pieces.chunks_exact(3);
    let cut = !records.remainder().is_empty() || !remainder.is_empty();
    let mut want: Vec<_> = records
        .map(|record| {
            let (tag, dir, mode) = (record[0], record[1], record[2]);
            if tag.is_empty() || tag.len() > share_file::TAG_MAX {
                Err(Bad::Tag)
            } else if dir.first() != Some(&b'/') {
                Err(Bad::Dir)
            } else {
                Ok((tag.to_vec(), dir.to_vec(), mode != b"rw"))
            }
        })
        .collect();
    if cut {
        want.push(Err(Bad::Truncated));
    }
    let got: Vec<_> = read
        .iter()
        .map(|r| {
            r.map(|s| {
                (
                    s.tag.to_bytes().to_vec(),
                    s.dir.to_bytes().to_vec(),
                    s.read_only,
                )
            })
        })
        .collect();
    assert_eq!(got, want, "{file:?}");
    let mut written = Vec::new();
    for share in read.iter().flatten() {
        share.write_to(&mut written);
    }
    let again: Vec<Share<'_>> = share_file::split(&written).map(|r| r.unwrap()).collect();
    assert_eq!(again, read.into_iter().flatten().collect::<Vec<_>>());
}

/// Any shares the host can write read back as themselves, in order.
pub fn shares_round_trip(shares: &[(Vec<u8>, Vec<u8>, bool)]) {
    let owned: Vec<_> = shares
        .iter()
        .map(|(tag, dir, ro)| {
            let c = |b: &[u8]| std::ffi::CString::new(b.to_vec()).expect("no NUL");
            (c(tag), c(dir), *ro)
        })
        .collect();
    let shares: Vec<Share<'_>> = owned
        .iter()
        .map(|(tag, dir, read_only)| Share {
            tag,
            dir,
            read_only: *read_only,
        })
        .collect();
    let mut file = Vec::new();
    for share in &shares {
        share.write_to(&mut file);
    }
    let read: Vec<_> = share_file::split(&file).collect();
    assert_eq!(read, shares.into_iter().map(Ok).collect::<Vec<_>>());
}

pub fn replay(target: &str, data: &[u8]) -> bool {
    match target {
        "cmdline" => cmdline(data),
        "args" => args_any(data),
        "sched_script" => sched_script(data),
        "kallsyms" => kallsyms(data),
        "iomem" => iomem(data),
        "num" => num(data),
        "superblock" => superblock(data),
        "shares" => shares(data),
        "kernel_image" => kernel_image(data),
        "lines" => {
            if let Ok(input) = LinesInput::arbitrary_take_rest(Unstructured::new(data)) {
                lines(&input);
            }
        }
        _ => return false,
    }
    true
}

/// Little-endian field of `n` bytes at `at`, by u64 arithmetic (the model's
/// own reads, apart from the parser's).
fn le(bytes: &[u8], at: u64, n: u64) -> Option<u64> {
    let start = usize::try_from(at).ok()?;
    let end = usize::try_from(at.checked_add(n)?).ok()?;
    let field = bytes.get(start..end)?;
    Some(field.iter().rev().fold(0, |v, &b| (v << 8) | u64::from(b)))
}

/// Target `kernel_image`: any bytes as a bzImage and as an ELF (the host
/// reads the image a user names, and the ELF it decompresses from it).
/// `payload` agrees with a transcription of the boot protocol's fields
/// (and what it returns lies inside the image); `pvh_entry` with a walk of
/// the PT_NOTE segments' notes in u64 arithmetic, and so do `build_id`
/// and `gnu_build_id`.
pub fn kernel_image(data: &[u8]) {
    assert_eq!(kernel_image::payload(data), payload_model(data));
    if let Some(p) = kernel_image::payload(data) {
        assert!(within(data, p.data));
    }
    assert_eq!(kernel_image::pvh_entry(data), pvh_model(data));
    assert_eq!(kernel_image::build_id(data), build_id_model(data));
    // The same bytes as /sys/kernel/notes: the init's read of the build-id.
    let id = elf_note::gnu_build_id(data);
    assert!(id.is_none_or(|id| within(data, id) && (1..=64).contains(&id.len())));
}

fn payload_model(image: &[u8]) -> Option<kernel_image::Payload<'_>> {
    if image.get(0x202..0x206) != Some(b"HdrS") || le(image, 0x206, 2)? < 0x208 {
        return None;
    }
    let sects = match le(image, 0x1f1, 1)? {
        0 => 4,
        n => n,
    };
    let start = (sects + 1) * 512 + le(image, 0x248, 4)?;
    let length = le(image, 0x24c, 4)?;
    if length < 4 || start + length > image.len() as u64 {
        return None;
    }
    let (start, end) = (start as usize, (start + length) as usize);
    let data = &image[start..end - 4];
    let codec = [
        (Codec::Gzip, &b"\x1f\x8b"[..]),
        (Codec::Xz, b"\xfd7zXZ\0"),
        (Codec::Zstd, b"\x28\xb5\x2f\xfd"),
        (Codec::Lz4Legacy, b"\x02\x21\x4c\x18"),
        (Codec::Lzma, b"\x5d\0\0"),
        (Codec::Bzip2, b"BZh"),
        (Codec::Lzo, b"\x89LZO"),
        (Codec::Uncompressed, b"\x7fELF"),
    ]
    .into_iter()
    .find(|(_, magic)| data.starts_with(magic))?
    .0;
    Some(kernel_image::Payload {
        codec,
        data,
        size: le(image, (end - 4) as u64, 4)? as u32,
    })
}

/// A note as (name, type, value).
type NoteModel<'a> = (&'a [u8], u64, &'a [u8]);

/// Each PT_NOTE segment's notes, walked in u64 arithmetic; a note cut
/// short ends its segment's walk.
fn notes_model(elf: &[u8]) -> Vec<Vec<NoteModel<'_>>> {
    let mut segments = Vec::new();
    if !elf.starts_with(b"\x7fELF") || le(elf, 4, 2) != Some(0x0102) || le(elf, 0x12, 2) != Some(62)
    {
        return segments;
    }
    let (Some(phoff), Some(entsize), Some(count)) =
        (le(elf, 0x20, 8), le(elf, 0x36, 2), le(elf, 0x38, 2))
    else {
        return segments;
    };
    if entsize < 0x38 {
        return segments;
    }
    for i in 0..count {
        let Some(phdr) = phoff.checked_add(i * entsize) else {
            continue;
        };
        if le(elf, phdr, 4) != Some(4) {
            continue;
        }
        let (Some(offset), Some(size)) = (le(elf, phdr + 8, 8), le(elf, phdr + 0x20, 8)) else {
            continue;
        };
        let Some(end) = offset.checked_add(size).filter(|&e| e <= elf.len() as u64) else {
            continue;
        };
        let mut notes = Vec::new();
        let mut at = offset;
        while end - at >= 12 {
            let (Some(namesz), Some(descsz), Some(kind)) =
                (le(elf, at, 4), le(elf, at + 4, 4), le(elf, at + 8, 4))
            else {
                break;
            };
            let name_end = at + 12 + namesz;
            let desc = (name_end + 3) & !3;
            let desc_end = desc + descsz;
            if desc_end > end {
                break;
            }
            let name = &elf[(at + 12) as usize..name_end as usize];
            notes.push((name, kind, &elf[desc as usize..desc_end as usize]));
            at = (desc_end + 3) & !3;
            if at > end {
                break;
            }
        }
        segments.push(notes);
    }
    segments
}

fn pvh_model(elf: &[u8]) -> Option<u64> {
    let (_, _, value) = notes_model(elf)
        .into_iter()
        .flatten()
        .find(|&(name, kind, _)| name == b"Xen\0" && kind == 18)?;
    match value.len() {
        4 | 8 => Some(value.iter().rev().fold(0, |n, &b| n << 8 | u64::from(b))),
        _ => None,
    }
}

/// The first GNU note of type 3 in a segment, when 1-64 bytes long; else
/// the next segment's.
fn build_id_model(elf: &[u8]) -> Option<&[u8]> {
    notes_model(elf).into_iter().find_map(|notes| {
        let (_, _, value) = notes
            .into_iter()
            .find(|&(name, kind, _)| name == b"GNU\0" && kind == 3)?;
        (1..=64).contains(&value.len()).then_some(value)
    })
}

/// A small bzImage: 4 setup sectors, an LZ4 magic and bytes as its payload.
pub fn sample_bzimage() -> Vec<u8> {
    let mut image = vec![0u8; 5 * 512 + 16];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
    image[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
    image[0x24c..0x250].copy_from_slice(&12u32.to_le_bytes());
    image.extend_from_slice(b"\x02\x21\x4c\x18four");
    image.extend_from_slice(&1000u32.to_le_bytes());
    image
}

/// A small x86_64 ELF whose one PT_NOTE has a note, then the PVH note.
pub fn sample_pvh_elf() -> Vec<u8> {
    let mut e = vec![0u8; 0x78];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[0x12] = 62;
    e[0x20] = 0x40;
    e[0x36] = 0x38;
    e[0x38] = 1;
    e[0x40] = 4;
    e[0x48] = 0x78;
    e[0x60] = 84;
    for (name, kind, value) in [
        (&b"Xen\0"[..], 6u32, &b"linux\0\0\0"[..]),
        (b"Xen\0", 18, &[0, 0x40, 0, 1, 0, 0, 0, 0]),
        (b"GNU\0", 3, &[0xb1; 20]),
    ] {
        e.extend_from_slice(&(name.len() as u32).to_le_bytes());
        e.extend_from_slice(&(value.len() as u32).to_le_bytes());
        e.extend_from_slice(&kind.to_le_bytes());
        e.extend_from_slice(name);
        e.extend_from_slice(value);
    }
    e
}
