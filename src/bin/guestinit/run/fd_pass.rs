//! A descriptor sent with a line over a Unix socket (SCM_RIGHTS): how QMP's
//! `getfd` receives the file a snapshot is written to, since QEMU's
//! seccomp filter forbids the `exec:` migration that would open it itself.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;

use rustix::fd::BorrowedFd;
use rustix::io::IoSlice;
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

/// Sends `bytes` with `fd` attached on `socket`, in one message (QEMU
/// takes the descriptor with the command it came with).
#[allow(
    unsafe_code,
    reason = "std's descriptors as rustix's: no safe conversion here"
)]
pub fn send_with_fd(socket: &impl AsRawFd, bytes: &[u8], fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: both descriptors are borrowed from owners that outlive the call.
    let (socket, fd) = unsafe {
        (
            BorrowedFd::borrow_raw(socket.as_raw_fd()),
            BorrowedFd::borrow_raw(fd.as_raw_fd()),
        )
    };
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptor"));
    }
    let sent = sendmsg(
        socket,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
    match sent == bytes.len() {
        true => Ok(()),
        false => Err(io::Error::other("the command was cut short")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_descriptor_arrives_with_the_line() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = crate::scratch::anonymous_file().unwrap();
        file.write_all(b"shared").unwrap();
        send_with_fd(&a, b"line\n", &file).unwrap();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 16];
        // SAFETY: `b` outlives the borrow.
        #[allow(unsafe_code)]
        let socket = unsafe { BorrowedFd::borrow_raw(b.as_raw_fd()) };
        let got = rustix::net::recvmsg(
            socket,
            &mut [rustix::io::IoSliceMut::new(&mut buf)],
            &mut control,
            rustix::net::RecvFlags::empty(),
        )
        .unwrap();
        assert_eq!(&buf[..got.bytes], b"line\n");
        let mut received = None;
        for message in control.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = message {
                received = fds.next();
            }
        }
        let fd = received.expect("a descriptor");
        // SAFETY: the descriptor was just received and is owned by nothing else.
        #[allow(unsafe_code)]
        let mut same = unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(
                rustix::fd::IntoRawFd::into_raw_fd(fd),
            )
        };
        same.rewind().unwrap();
        let mut text = String::new();
        same.read_to_string(&mut text).unwrap();
        assert_eq!(text, "shared");
    }
}
