//! The guest's network, after SRDY: the hostname and `lo` up in every
//! run, so local servers work; with `guestinit.net`, eth0 on QEMU's user
//! network at its fixed addresses (`proto::net`), with no DHCP client (the
//! host packs /etc/resolv.conf). A step that fails is warned of; the run
//! goes on.

use crate::link::Link;
use guestinit::fmt::ErrnoText;
use guestinit::proto::boot::BootParams;
use guestinit::proto::net;
use guestinit::sys::net::Rtnl;
use rustix::io::Errno;

/// `lo` up: the same in every run, so before a snapshot.
pub fn loopback(link: &mut Link) {
    let rtnl = Rtnl::open().map_err(|e| ("rtnetlink", e));
    let lo = rtnl.and_then(|rtnl| {
        let lo = rtnl.index(b"lo").and_then(|lo| rtnl.set_up(lo));
        lo.map_err(|e| ("lo", e))
    });
    if let Err((what, e)) = lo {
        link.warn(format_args!("{what}: {}", ErrnoText(e)));
    }
}

/// The run's part: its host name, and eth0 when it has one.
pub fn setup(link: &mut Link, params: &BootParams) {
    let name = params.hostname.as_ref().map(|h| h.as_bytes());
    let name = name.unwrap_or(net::DEFAULT_HOSTNAME.as_bytes());
    if let Err((what, e)) = configure(name, params.net) {
        link.warn(format_args!("{what}: {}", ErrnoText(e)));
    }
}

/// Each step, until one fails: what failed and why.
fn configure(hostname: &[u8], eth0: bool) -> Result<(), (&'static str, Errno)> {
    rustix::system::sethostname(hostname).map_err(|e| ("sethostname", e))?;
    if eth0 {
        let rtnl = Rtnl::open().map_err(|e| ("rtnetlink", e))?;
        user_network(&rtnl).map_err(|e| (net::INTERFACE, e))?;
    }
    Ok(())
}

/// eth0 up, its address (and so its subnet's route), the default route
/// through QEMU's gateway. virtio_net probed eth0 when it was loaded.
fn user_network(rtnl: &Rtnl) -> Result<(), Errno> {
    let index = rtnl.index(net::INTERFACE.as_bytes())?;
    rtnl.set_up(index)?;
    rtnl.add_address(index, net::ADDRESS, net::PREFIX_LEN)?;
    rtnl.add_default_route(net::GATEWAY)
}
