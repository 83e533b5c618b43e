//! `/init sched stop | start [ARGS...] | status`: the payload's side of the
//! control socket, in the init binary itself (run when it is not PID 1).
//! Its words go as the request, unchecked (the init checks them), and the
//! reply's text is printed, to stdout on success and stderr otherwise; the
//! exit code is the reply's (`proto::sched_ctl::Code`), 4 with no socket,
//! 5 for a reply it cannot read.

use crate::small_file::write_all;
use guestinit::fmt::ErrnoText;
use guestinit::proto::sched_ctl::{self, Code, Reply};
use guestinit::sys::process::exit_group;
use rustix::fd::BorrowedFd;
use rustix::net::{AddressFamily, Shutdown, SocketAddrUnix, SocketFlags, SocketType};

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
    let got = ask(&request[..len], &mut reply).unwrap_or_else(|e| {
        let mut why = [0u8; 64];
        let mut w = guestinit::fmt::SliceWriter::new(&mut why);
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!("{}", ErrnoText(e)));
        let text: [&[u8]; 3] = [b"no scheduler control socket at /run/guestinit/sched.sock (", w.written(), b"): the run has no scheduler"];
        say(sched_ctl::NO_SOCKET, &text)
    });
    match Reply::decode(&reply[..got]) {
        Some(r) => say(r.code as u8, &[r.text]),
        None => say(sched_ctl::BAD_REPLY, &[b"a reply the client cannot read"]),
    }
}

/// Sends `request`, then reads the reply to its end: its length.
fn ask(request: &[u8], reply: &mut [u8]) -> Result<usize, rustix::io::Errno> {
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(sched_ctl::SOCKET)?)?;
    write_all(rustix::fd::AsFd::as_fd(&fd), request)?;
    rustix::net::shutdown(&fd, Shutdown::Write)?;
    let mut len = 0;
    while len < reply.len() {
        match rustix::io::read(&fd, &mut reply[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
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
