//! The host's stdin to the payload's, when it is no terminal: a thread
//! copies it into the stdin link and shuts the link's writing half at EOF,
//! which QEMU passes on as the port's close once it has read every byte
//! before it, and the guest reads as EOF. A terminal's stdin is not forwarded (the payload
//! reads /dev/null): an interactive session is the shell mode's job.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread;

/// Starts the copy; it ends at the host's EOF or when QEMU goes away. A
/// copy still blocked on the host's stdin when the run ends dies with it.
pub fn forward(link: UnixStream) {
    thread::spawn(move || {
        // The thread may block: QEMU taking bytes only as the payload
        // reads them is the backpressure.
        if link.set_nonblocking(false).is_ok() {
            let _ = io::copy(&mut io::stdin().lock(), &mut &link);
        }
        // Not a close: QEMU drops what it has not read yet on a hang-up,
        // but reads up to a half-close. The link stays open until the
        // process ends.
        let _ = link.shutdown(Shutdown::Write);
        std::mem::forget(link);
    });
}
