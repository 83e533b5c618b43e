//! A child's stdout and stderr, framed onto the link under the child's own
//! quota: the payload's as SOUT and SERR, the scheduler's both as SCLG. A
//! pipe is polled only while its quota has room, so a slow host slows the
//! child and loses nothing.

use crate::console::warning;
use crate::link::{self, Link};
use crate::reactor::Interests;
use guestinit::fmt::ErrnoText;
use guestinit::outbox::{Quota, Reserved};
use guestinit::wire::Tag;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use heapless::Vec;
use rustix::io::{Errno, IoSliceMut};

/// Frames one read may fill: fewer reads wake the pipe's writer less often,
/// and each wakeup is a context switch, dear under TCG. Four take a default
/// pipe's 64 KiB at once; the stack fixes left room for the pool buffers
/// they keep resident (peak RSS while streaming 240-248 KiB, under 256).
const READ_FRAMES: usize = 4;

/// One output pipe and the tag its bytes travel under.
struct Pipe {
    fd: Option<OwnedFd>,
    tag: Tag,
}

pub struct Output {
    pipes: [Pipe; 2],
    quota: Quota,
}

impl Output {
    /// `stdout` and `stderr` (the init's non-blocking read ends), framed
    /// under `tags` and `quota`.
    pub fn new(streams: [OwnedFd; 2], tags: [Tag; 2], quota: Quota) -> Output {
        let [out, err] = streams;
        Output {
            pipes: [
                Pipe {
                    fd: Some(out),
                    tag: tags[0],
                },
                Pipe {
                    fd: Some(err),
                    tag: tags[1],
                },
            ],
            quota,
        }
    }

    /// Either pipe is still open.
    pub fn open(&self) -> bool {
        self.pipes.iter().any(|p| p.fd.is_some())
    }

    /// Closes both pipes, whoever still holds their other ends.
    pub fn close(&mut self) {
        for pipe in &mut self.pipes {
            pipe.fd = None;
        }
    }

    /// The open pipes, while the quota has room; tokens 0 and 1.
    pub fn interests<'s>(&'s self, link: &Link, out: &mut Interests<'s>) {
        if !link.has_room(self.quota) {
            return;
        }
        for (i, pipe) in self.pipes.iter().enumerate() {
            if let Some(fd) = &pipe.fd {
                out.add(fd.as_fd(), PollFlags::IN, i as u8);
            }
        }
    }

    /// Moves one read of pipe `token` into frames; EOF closes the pipe.
    pub fn on_ready(&mut self, token: u8, link: &mut Link) {
        let Some(pipe) = self.pipes.get_mut(token as usize) else {
            return;
        };
        let Some(fd) = &pipe.fd else { return };
        let mut rs: Vec<Reserved, READ_FRAMES> = Vec::new();
        while let Some(r) = (!rs.is_full()).then(|| link.reserve(self.quota)).flatten() {
            let _ = rs.push(r);
        }
        if rs.is_empty() {
            return;
        }
        let read = {
            let mut areas: Vec<IoSliceMut<'_>, READ_FRAMES> =
                link.payload_areas(&mut rs).map(IoSliceMut::new).collect();
            rustix::io::readv(fd, &mut areas)
        };
        let mut left = match read {
            Ok(0) => {
                pipe.fd = None;
                0
            }
            Ok(n) => n,
            Err(Errno::AGAIN | Errno::INTR) => 0,
            Err(e) => {
                warning!("read {}: {}", pipe.tag, ErrnoText(e));
                pipe.fd = None;
                0
            }
        };
        for r in rs {
            let len = left.min(link::MAX_PAYLOAD);
            left -= len;
            match len {
                0 => link.release(r),
                _ => link.commit(r, pipe.tag, len),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, collect, link};
    use rustix::fs::OFlags;

    #[test]
    fn one_read_fills_frames_in_order_and_eof_closes_the_pipe() {
        let (mut link, port) = link();
        let (out, writer) = crate::test_pipe::pipe();
        let (err, _err_writer) = crate::test_pipe::pipe();
        for fd in [&out, &err] {
            rustix::fs::fcntl_setfl(fd, OFlags::NONBLOCK).unwrap();
        }
        let full = crate::link::MAX_PAYLOAD;
        // More than one read takes, within a default pipe's 64 KiB.
        let rest = 50;
        let total = READ_FRAMES * full + rest;
        let data: std::vec::Vec<u8> = (0..total as u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(rustix::io::write(&writer, &data), Ok(data.len()));
        let quota = Quota { lane: 1, max: 6 };
        let mut output = Output::new([out, err], [Tag::SOUT, Tag::SERR], quota);
        output.on_ready(0, &mut link);
        drop(writer);
        output.on_ready(0, &mut link);
        assert!(output.pipes[0].fd.is_some(), "the rest came before EOF");
        output.on_ready(0, &mut link);
        assert!(output.pipes[0].fd.is_none(), "EOF closed stdout");
        let frames = collect(link, port);
        let lens: std::vec::Vec<usize> = frames.iter().map(|(_, p)| p.len()).collect();
        let mut want = std::vec![full; READ_FRAMES];
        want.push(rest);
        assert_eq!(lens, want, "one read's frames, then the rest");
        assert!(frames.iter().all(|(t, _)| *t == Tag::SOUT));
        assert!(testkit::output(&frames, Tag::SOUT) == data);
    }
}
