//! Failures that end the run: a FATAL line on COM2 and COM1, the reason as
//! SERR and a non-zero EXIT where the port works, then power off.

use crate::link::{self, Ack, Link};
use crate::vports::PortError;
use crate::{console, mounts, power};
use core::fmt::{self, Write};
use guestinit::fmt::{ErrnoText, Lossy, SliceWriter};
use guestinit::proto;
use guestinit::sys::klog;
use guestinit::wire::Tag;

/// A failure that ends the run while the link works.
pub fn fail(link: &mut Link, args: fmt::Arguments<'_>) -> ! {
    fail_with(link, 1, args)
}

/// A failure that ends the run with its own exit code (248: the scheduler).
pub fn fail_with(link: &mut Link, code: i32, args: fmt::Arguments<'_>) -> ! {
    console::fatal(args);
    let mut buf = [0u8; 512];
    let mut w = SliceWriter::new(&mut buf);
    let _ = writeln!(w, "{}{args}", proto::prefix::WARNING);
    link.send(Tag::SERR, w.written());
    link.finish(code, Ack::None);
    power::off()
}

/// A failure with no port to report it on: COM2 only.
pub fn without_port(args: fmt::Arguments<'_>) -> ! {
    console::fatal(args);
    power::off()
}

/// No port: say why, on COM2.
pub fn no_port(e: PortError) -> ! {
    match e {
        PortError::NotFound => without_port(format_args!(
            "no virtio port named {} after {} ms (are virtio_console and virtio_pci in /modules?)",
            proto::BULK_PORT,
            link::WAIT_MS
        )),
        PortError::Open(e) => without_port(format_args!("open the bulk port: {}", ErrnoText(e))),
    }
}

/// The kernel ran out of memory while unpacking the initramfs: say so, with
/// the kernel log (on COM2 and as DMSG), and stop. A truncated archive may
/// lack the modules too, so this, not the port, is the cause to report.
pub fn initramfs_incomplete(link: Option<Link>) -> ! {
    console::fatal(format_args!(
        "initramfs incomplete: {} is missing; the kernel ran out of memory unpacking it. Give the VM more memory.",
        proto::path::SENTINEL
    ));
    match link {
        Some(mut link) => {
            forward_kernel_log(&mut link);
            link.finish(1, Ack::None);
        }
        None => kernel_log_to_com2(),
    }
    power::off()
}

/// A required mount failed: the run ends, reported on the link if any.
pub fn mount_failed(failed: &mounts::Failed, link: Option<Link>) -> ! {
    let (target, errno) = (Lossy(failed.target.to_bytes()), ErrnoText(failed.errno));
    match link {
        Some(mut link) => fail(&mut link, format_args!("mount {target}: {errno}")),
        None => without_port(format_args!("mount {target}: {errno}")),
    }
}

/// The whole kernel log to COM2 alone, when there is no port for DMSG.
fn kernel_log_to_com2() {
    let mut buf = [0u8; 2048];
    while let Ok(n @ 1..) = klog::read_unread(&mut buf) {
        console::com2(&buf[..n]);
    }
}

/// The whole kernel log, oldest first, a pool buffer at a time, to COM2 and
/// as DMSG frames.
fn forward_kernel_log(link: &mut Link) {
    loop {
        let Some(r) = link.reserve_control() else {
            if link.flush_within(None).is_err() {
                return;
            }
            continue;
        };
        let area = link.payload_area(&r);
        match klog::read_unread(area) {
            Ok(n) if n > 0 => {
                console::com2(&area[..n]);
                link.commit(r, Tag::DMSG, n);
                link.pump();
            }
            _ => return link.release(r),
        }
    }
}
