//! A child's stdout and stderr, framed onto the link under the child's own
//! quota: the payload's as SOUT and SERR, the scheduler's both as SCLG. A
//! pipe is polled only while its quota has room, so a slow host slows the
//! child and loses nothing.

use crate::console::warning;
use crate::link::Link;
use crate::reactor::Interests;
use guestinit::fmt::ErrnoText;
use guestinit::outbox::Quota;
use guestinit::wire::Tag;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;

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

    /// Moves one read of pipe `token` into a frame; EOF closes the pipe.
    pub fn on_ready(&mut self, token: u8, link: &mut Link) {
        let Some(pipe) = self.pipes.get_mut(token as usize) else {
            return;
        };
        let Some(fd) = &pipe.fd else { return };
        let Some(r) = link.reserve(self.quota) else {
            return;
        };
        match rustix::io::read(fd, link.payload_area(&r)) {
            Ok(0) => {
                link.release(r);
                pipe.fd = None;
            }
            Ok(n) => link.commit(r, pipe.tag, n),
            Err(Errno::AGAIN | Errno::INTR) => link.release(r),
            Err(e) => {
                link.release(r);
                warning!("read {}: {}", pipe.tag, ErrnoText(e));
                pipe.fd = None;
            }
        }
    }
}
