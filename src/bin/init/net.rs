//! The guest's network, after SRDY: the hostname and `lo` up in every
//! run, so local servers work. A step that fails is warned of; the run
//! goes on.

use crate::link::Link;
use guestinit::fmt::ErrnoText;
use guestinit::proto::boot::BootParams;
use guestinit::proto::net;
use guestinit::sys::net::Rtnl;
use rustix::io::Errno;

pub fn setup(link: &mut Link, params: &BootParams) {
    let name = params.hostname.as_ref().map(|h| h.as_bytes());
    let name = name.unwrap_or(net::DEFAULT_HOSTNAME.as_bytes());
    if let Err((what, e)) = configure(name) {
        link.warn(format_args!("{what}: {}", ErrnoText(e)));
    }
}

/// Each step, until one fails: what failed and why.
fn configure(hostname: &[u8]) -> Result<(), (&'static str, Errno)> {
    rustix::system::sethostname(hostname).map_err(|e| ("sethostname", e))?;
    let rtnl = Rtnl::open().map_err(|e| ("rtnetlink", e))?;
    let lo = rtnl.index(b"lo").and_then(|lo| rtnl.set_up(lo));
    lo.map_err(|e| ("lo", e))
}
