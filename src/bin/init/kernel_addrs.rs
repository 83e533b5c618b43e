//! KADR: where the kernel sits, for the host's symbolisation of crash dumps.
//! `_text` comes from /proc/kallsyms, near its start; `page_offset_base`
//! is `_text` plus the offset the host read from System.map when it passed
//! one, else the scan goes on until the symbol (deep in the list: 100-300
//! ms under TCG). `phys_base` comes from the "Kernel code" resource in
//! /proc/iomem, in the meaning ktstr's host expects (see `iomem::kernel_phys_base`).
//! KBID: the kernel's build-id, from /sys/kernel/notes.

use core::ops::ControlFlow;
use guestinit::parse::{elf_note, iomem, kallsyms, lines::LineSplitter};
use guestinit::wire::msg::KernelAddrs;
use rustix::fs::OFlags;

/// Bytes of /proc/kallsyms read at a time while only `_text` is wanted.
const TEXT_READ: usize = 512;

/// Reads the addresses; `scratch` is a read buffer (a pool buffer), and
/// `pob_offset` is `page_offset_base - _text` when the host knows it.
pub fn read(scratch: &mut [u8], pob_offset: Option<u64>) -> KernelAddrs {
    let mut text = None;
    let mut page_offset_base = 0;
    // With the offset, only `_text` is wanted, a few lines in: a small read
    // spares the kernel formatting hundreds of lines (dear under TCG).
    let chunk = match pob_offset {
        Some(_) => scratch.len().min(TEXT_READ),
        None => scratch.len(),
    };
    each_line(b"/proc/kallsyms", &mut scratch[..chunk], &mut |line| {
        if let Some(sym) = kallsyms::parse_line(line).filter(|s| s.module.is_none()) {
            match sym.name {
                b"_text" => text = Some(sym.addr),
                b"page_offset_base" => page_offset_base = sym.addr,
                _ => {}
            }
        }
        match (text, pob_offset) {
            (Some(text), Some(offset)) => {
                page_offset_base = text.wrapping_add(offset);
                ControlFlow::Break(())
            }
            (Some(_), None) if page_offset_base != 0 => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    });
    let mut phys_base = None;
    each_line(b"/proc/iomem", scratch, &mut |line| {
        phys_base = iomem::kernel_phys_base(line);
        match phys_base {
            Some(_) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
        }
    });
    KernelAddrs {
        phys_base,
        page_offset_base,
        text: text.filter(|&t| t != 0),
    }
}

/// Feeds the lines of `path` to `f` until it breaks or the file ends.
/// `dyn`: one copy of the read loop serves both files.
fn each_line(path: &[u8], buf: &mut [u8], f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) {
    let Ok(file) = crate::small_file::open(path, OFlags::RDONLY | OFlags::CLOEXEC) else {
        return;
    };
    let mut lines: LineSplitter<256> = LineSplitter::new();
    loop {
        match rustix::io::read(&file, &mut *buf) {
            Ok(0) => {
                let _ = lines.finish(f);
                return;
            }
            Ok(n) => {
                if lines.feed(&buf[..n], &mut *f).is_break() {
                    return;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// The booted kernel's GNU build-id, read into `scratch` (a pool buffer;
/// the kernel's notes are a few hundred bytes). Empty when there is none.
pub fn build_id(scratch: &mut [u8]) -> &[u8] {
    match crate::small_file::read_file(b"/sys/kernel/notes", scratch) {
        Ok(Some(len)) => elf_note::gnu_build_id(&scratch[..len]).unwrap_or(&[]),
        _ => &[],
    }
}

