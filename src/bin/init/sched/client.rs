//! `/init sched stop | start [ARGS...] | status`: the payload's side of the
//! control socket, in the init binary itself (run when it is not PID 1).
//! Its words go as the request, unchecked (the init checks them), and the
//! reply's text is printed, to stdout on success and stderr otherwise; the
//! exit code is the reply's (`proto::sched_ctl::Code`), 4 with no socket,
//! 5 for no reply or one it cannot read.

use crate::small_file::write_all;
use guestinit::proto::sched_ctl::{self, Code, Reply};
use guestinit::sys::process::exit_group;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;
use rustix::net::{Shutdown, SocketFlags};

/// `std` is the client's stdout and stderr.
pub fn main<'a>(mut args: impl Iterator<Item = &'a [u8]>, std: [BorrowedFd<'_>; 2]) -> ! {
    let say = |code: u8, parts: &[&[u8]]| -> ! { say(std, code, parts) };
    let _init = args.next();
    if args.next() != Some(b"sched".as_slice()) {
        say(Code::Refused as u8, &[b"usage: /init sched stop | start [ARGS...] | status"]);
    }
    let mut request = [0u8; sched_ctl::MAX_REQUEST];
    let Some(len) = sched_ctl::encode_words(args, &mut request) else {
        say(Code::Refused as u8, &[b"refused: a request over 4102 bytes"]);
    };
    let mut reply = [0u8; sched_ctl::MAX_TEXT + 2];
    let got = match ask(&request[..len], &mut reply) {
        Ok(got) => got,
        Err(Asked::NoSocket) => say(
            sched_ctl::NO_SOCKET,
            &[b"no scheduler control socket at /run/guestinit/sched.sock: the run has no scheduler"],
        ),
        Err(Asked::NoReply) => 0,
    };
    match Reply::decode(&reply[..got]) {
        Some(r) => say(r.code as u8, &[r.text]),
        None => say(sched_ctl::BAD_REPLY, &[b"no reply from the init (the run is ending?)"]),
    }
}

/// How a request went unanswered.
enum Asked {
    /// The socket is missing or nothing listens on it.
    NoSocket,
    /// The connection failed after it was made.
    NoReply,
}

/// Sends `request`, then reads the reply to its end: its length.
fn ask(request: &[u8], reply: &mut [u8]) -> Result<usize, Asked> {
    let connected = super::ctl::socket(SocketFlags::empty()).and_then(|(fd, addr)| {
        rustix::net::connect(&fd, &addr)?;
        Ok(fd)
    });
    let fd = connected.map_err(|_| Asked::NoSocket)?;
    write_all(fd.as_fd(), request).map_err(|_| Asked::NoReply)?;
    rustix::net::shutdown(&fd, Shutdown::Write).map_err(|_| Asked::NoReply)?;
    let mut len = 0;
    while len < reply.len() {
        match rustix::io::read(&fd, &mut reply[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(_) => return Err(Asked::NoReply),
        }
    }
    Ok(len)
}

/// Prints `parts` and a newline (stdout for 0, else stderr) and exits `code`.
fn say(std: [BorrowedFd<'_>; 2], code: u8, parts: &[&[u8]]) -> ! {
    let fd = std[usize::from(code != 0)];
    for part in parts.iter().chain([&b"\n"[..]].iter()) {
        let _ = write_all(fd, part);
    }
    exit_group(i32::from(code))
}
