//! The end of a run: the last frames, delivered for certain, then power off.

use crate::boot::Outbox;
use crate::bulk::Port;
use crate::clock;
use crate::console::warning;
use guestinit::fmt::ErrnoText;
use guestinit::sys::power;
use guestinit::sys::process::{exit_group, wait4, Child};
use guestinit::wire::{Decoder, Event, Tag};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

/// How long the init waits for the host's EACK after EXIT when the host
/// asked for one (`guestinit.ack` on the command line).
pub const ACK_WAIT_MS: u64 = 30_000;

/// Waits until the port takes more, at most `ms` (None: without bound).
pub fn wait_writable(port: &Port, ms: Option<u64>) -> Result<(), Errno> {
    let mut fds = [PollFd::from_borrowed_fd(port.fd(), PollFlags::OUT)];
    let timeout = ms.map(clock::timespec_ms);
    match poll(&mut fds, timeout.as_ref())? {
        0 => Err(Errno::TIMEDOUT),
        _ => Ok(()),
    }
}

/// Sends EXIT last of all. Everything before it is flushed non-blocking;
/// EXIT itself is written blocking, which returns once the host has taken
/// the buffer. With `ack`, waits (bounded) for the host to confirm that it
/// read EXIT, which proves that it read every frame before it.
pub fn send_exit(outbox: &mut Outbox<'_>, code: i32, ack: bool) {
    let mut wait = |port: &mut Port| wait_writable(port, None);
    let delivered = outbox
        .flush(&mut wait)
        .and_then(|()| outbox.sink().set_blocking())
        .and_then(|()| outbox.send(Tag::EXIT, &code.to_le_bytes(), &mut wait))
        .and_then(|()| outbox.flush(&mut wait));
    if let Err(e) = delivered {
        warning!("could not deliver EXIT {code}: {}", ErrnoText(e));
        return;
    }
    if ack && !await_ack(outbox.sink()) {
        warning!("no EACK from the host within {ACK_WAIT_MS} ms");
    }
}

/// Reads host -> guest frames until EACK or the deadline.
fn await_ack(port: &Port) -> bool {
    let deadline = clock::now_ns() + ACK_WAIT_MS * 1_000_000;
    let mut storage = [0u8; 64];
    let mut decoder = Decoder::new(&mut storage);
    let mut input = [0u8; 64];
    while clock::now_ns() < deadline {
        let mut fds = [PollFd::from_borrowed_fd(port.fd(), PollFlags::IN)];
        if !matches!(
            poll(&mut fds, Some(&clock::timespec_until(deadline))),
            Ok(1..)
        ) {
            continue;
        }
        let Ok(n) = rustix::io::read(port.fd(), &mut input) else {
            continue;
        };
        if n == 0 {
            // The host closed its end: it has read everything it will.
            clock::sleep_ms(10);
            continue;
        }
        let mut rest = &input[..n];
        loop {
            let (taken, event) = decoder.push(rest);
            rest = &rest[taken..];
            match event {
                Some(Event::Frame { tag: Tag::EACK, .. }) => return true,
                None if rest.is_empty() => break,
                _ => {}
            }
        }
    }
    false
}

/// Collects every remaining child, then powers the VM off. Never returns:
/// should power-off fail, a restart (ended by the VMM's -no-reboot) follows,
/// and as the very last resort PID 1 exits, which panics the kernel
/// (panic=-1 reboots it).
pub fn power_off() -> ! {
    while let Ok(Some(_)) = wait4(Child::Any, false) {}
    if let Err(e) = power::power_off() {
        warning!("power off: {}", ErrnoText(e));
    }
    let _ = power::restart();
    exit_group(1)
}
