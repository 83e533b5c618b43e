//! COM2's queue as a reactor source: polled for room while it holds
//! bytes, cleaned up last so that every warning of the run goes out.

use crate::console;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use rustix::event::PollFlags;

pub struct Com2Drain;

impl Source for Com2Drain {
    fn rank(&self) -> Rank {
        Rank::Console
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        if let Some(fd) = console::com2_backlog() {
            out.add(fd, PollFlags::OUT, 0);
        }
    }

    fn on_ready(&mut self, _token: u8, _events: PollFlags, _ctx: &mut Ctx<'_>) {
        console::com2_write_some();
    }

    fn done(&self) -> bool {
        console::com2_backlog().is_none()
    }
}
