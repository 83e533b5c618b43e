//! KADR: where the kernel sits, for the host's symbolisation of crash dumps.
//! `_text` and `page_offset_base` come from /proc/kallsyms (the scan stops
//! once both are seen); the physical load address of `_text` from the
//! "Kernel code" resource in /proc/iomem.

use core::ops::ControlFlow;
use guestinit::parse::{iomem, kallsyms, lines::LineSplitter};
use guestinit::wire::msg::KernelAddrs;
use rustix::fs::{Mode, OFlags};

/// The x86_64 kernel image's virtual base (`__START_KERNEL_map`).
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// Reads the addresses; `scratch` is a read buffer (a pool buffer).
pub fn read(scratch: &mut [u8]) -> KernelAddrs {
    let mut text = None;
    let mut page_offset_base = 0;
    each_line(c"/proc/kallsyms", scratch, |line| {
        if let Some(sym) = kallsyms::parse_line(line).filter(|s| s.module.is_none()) {
            match sym.name {
                b"_text" => text = Some(sym.addr),
                b"page_offset_base" => page_offset_base = sym.addr,
                _ => {}
            }
        }
        if text.is_some() && page_offset_base != 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    let mut kernel_code = None;
    each_line(c"/proc/iomem", scratch, |line| {
        match iomem::parse_line(line) {
            Some(r) if r.name == b"Kernel code" => {
                kernel_code = Some(r.start);
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    });
    KernelAddrs {
        // __pa_symbol(_text) = _text - __START_KERNEL_map + phys_base, in
        // the kernel's wrapping u64 arithmetic (KASLR moves the virtual and
        // physical bases independently, so phys_base may "go negative").
        phys_base: match (kernel_code, text) {
            (Some(phys), Some(virt)) => {
                Some(phys.wrapping_sub(virt.wrapping_sub(START_KERNEL_MAP)))
            }
            _ => None,
        },
        page_offset_base,
        text: text.filter(|&t| t != 0),
    }
}

/// Feeds the lines of `path` to `f` until it breaks or the file ends.
fn each_line(path: &core::ffi::CStr, buf: &mut [u8], mut f: impl FnMut(&[u8]) -> ControlFlow<()>) {
    let Ok(file) = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) else {
        return;
    };
    let mut lines: LineSplitter<256> = LineSplitter::new();
    loop {
        match rustix::io::read(&file, &mut *buf) {
            Ok(0) => {
                let _ = lines.finish(&mut f);
                return;
            }
            Ok(n) => {
                if lines.feed(&buf[..n], &mut f).is_break() {
                    return;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}
