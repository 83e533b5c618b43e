//! An interface's IPv4 setup through rtnetlink, as `ip` does it: a link
//! up, an address, the default route, each one request the kernel
//! acknowledges; and an interface's index by name (SIOCGIFINDEX, which
//! any socket answers, the netlink one too).

use super::raw::{check, syscall3};
use super::Result;
use core::mem::size_of;
use linux_raw_sys::general::{__NR_ioctl, __NR_socket, O_CLOEXEC};
use linux_raw_sys::ioctl::SIOCGIFINDEX;
use linux_raw_sys::net::net_device_flags::IFF_UP;
use linux_raw_sys::net::{AF_NETLINK, SOCK_RAW};
use linux_raw_sys::netlink::rt_class_t::RT_TABLE_MAIN;
use linux_raw_sys::netlink::rt_scope_t::RT_SCOPE_UNIVERSE;
use linux_raw_sys::netlink::rtattr_type_t::RTA_GATEWAY;
use linux_raw_sys::netlink::NETLINK_ROUTE;
use linux_raw_sys::netlink::{
    ifaddrmsg, ifinfomsg, nlmsghdr, rtattr, rtmsg, IFA_LOCAL, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_EXCL, NLM_F_REQUEST, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE, RTN_UNICAST, RTPROT_BOOT,
};
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use rustix::io::Errno;

const AF_INET: u8 = linux_raw_sys::net::AF_INET as u8;
/// An interface name's room in `struct ifreq`, its NUL included.
const IFNAMSIZ: usize = 16;

/// `struct ifreq` as SIOCGIFINDEX uses it: the name, then the index.
#[repr(C)]
struct IfIndex {
    name: [u8; IFNAMSIZ],
    index: i32,
    /// The rest of the union, which the kernel copies in and out.
    _rest: [u8; 20],
}

/// The requests: a header, the family's message, one address attribute.
/// All integers, laid out without padding (the asserts below), so their
/// bytes are what the kernel reads.
#[repr(C)]
struct LinkUp {
    header: nlmsghdr,
    link: ifinfomsg,
}

#[repr(C)]
struct AddAddress {
    header: nlmsghdr,
    addr: ifaddrmsg,
    local: rtattr,
    address: [u8; 4],
}

#[repr(C)]
struct AddRoute {
    header: nlmsghdr,
    route: rtmsg,
    gateway: rtattr,
    address: [u8; 4],
}

const _: () = assert!(size_of::<IfIndex>() == 40);
const _: () = assert!(size_of::<LinkUp>() == 32);
const _: () = assert!(size_of::<AddAddress>() == 32);
const _: () = assert!(size_of::<AddRoute>() == 36);

/// The kernel's answer as far as it is read: a header of NLMSG_ERROR,
/// then the error (0 for success).
const ACK_LEN: usize = size_of::<nlmsghdr>() + 4;

/// One `Request` type per message, so `send` takes no other bytes.
trait Request {}
impl Request for LinkUp {}
impl Request for AddAddress {}
impl Request for AddRoute {}

fn header(kind: u16, len: usize, create: bool) -> nlmsghdr {
    let create = match create {
        true => NLM_F_CREATE | NLM_F_EXCL,
        false => 0,
    };
    nlmsghdr {
        nlmsg_len: len as u32,
        nlmsg_type: kind,
        nlmsg_flags: (NLM_F_REQUEST | NLM_F_ACK | create) as u16,
        nlmsg_seq: 0,
        nlmsg_pid: 0,
    }
}

/// An IPv4 address attribute of type `kind`.
fn address_attr(kind: u16) -> rtattr {
    rtattr {
        rta_len: (size_of::<rtattr>() + 4) as u16,
        rta_type: kind,
    }
}

/// A NETLINK_ROUTE socket.
pub struct Rtnl(OwnedFd);

impl Rtnl {
    /// By the raw syscall: rustix's `socket_with`, inlined, is 100 bytes more.
    pub fn open() -> Result<Rtnl> {
        // SOCK_CLOEXEC is O_CLOEXEC (the uapi headers define it so).
        let kind = (SOCK_RAW | O_CLOEXEC) as usize;
        // SAFETY: socket(2) takes no pointer.
        let fd = check(unsafe {
            syscall3(
                __NR_socket,
                AF_NETLINK as usize,
                kind,
                NETLINK_ROUTE as usize,
            )
        })?;
        // SAFETY: the kernel just returned this descriptor, which nothing else owns.
        Ok(Rtnl(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// The index of the interface `name`.
    pub fn index(&self, name: &[u8]) -> Result<u32> {
        let mut req = IfIndex {
            name: [0; IFNAMSIZ],
            index: 0,
            _rest: [0; 20],
        };
        // At most IFNAMSIZ - 1 bytes, so the name stays NUL-terminated.
        for (to, &b) in req.name[..IFNAMSIZ - 1].iter_mut().zip(name) {
            *to = b;
        }
        let fd = self.0.as_raw_fd() as usize;
        let req_ptr = &mut req as *mut IfIndex as usize;
        // SAFETY: SIOCGIFINDEX reads a NUL-terminated name from and writes
        // an int into this 40-byte `struct ifreq`, which outlives the call.
        check(unsafe { syscall3(__NR_ioctl, fd, SIOCGIFINDEX as usize, req_ptr) })?;
        Ok(req.index as u32)
    }

    /// Sets interface `index` up (IFF_UP alone, the other flags untouched).
    pub fn set_up(&self, index: u32) -> Result<()> {
        self.request(&LinkUp {
            header: header(RTM_NEWLINK as u16, size_of::<LinkUp>(), false),
            link: ifinfomsg {
                ifi_family: 0,
                __ifi_pad: 0,
                ifi_type: 0,
                ifi_index: index as i32,
                ifi_flags: IFF_UP as u32,
                ifi_change: IFF_UP as u32,
            },
        })
    }

    /// Adds `address`/`prefix_len` to interface `index`, which also makes
    /// the route to its subnet.
    pub fn add_address(&self, index: u32, address: [u8; 4], prefix_len: u8) -> Result<()> {
        self.request(&AddAddress {
            header: header(RTM_NEWADDR as u16, size_of::<AddAddress>(), true),
            addr: ifaddrmsg {
                ifa_family: AF_INET,
                ifa_prefixlen: prefix_len,
                ifa_flags: 0,
                ifa_scope: RT_SCOPE_UNIVERSE as u8,
                ifa_index: index,
            },
            local: address_attr(IFA_LOCAL as u16),
            address,
        })
    }

    /// Adds the default route through `gateway`, which a route of an
    /// interface's subnet must reach.
    pub fn add_default_route(&self, gateway: [u8; 4]) -> Result<()> {
        self.request(&AddRoute {
            header: header(RTM_NEWROUTE as u16, size_of::<AddRoute>(), true),
            route: rtmsg {
                rtm_family: AF_INET,
                rtm_dst_len: 0,
                rtm_src_len: 0,
                rtm_tos: 0,
                rtm_table: RT_TABLE_MAIN as u8,
                rtm_protocol: RTPROT_BOOT as u8,
                rtm_scope: RT_SCOPE_UNIVERSE as u8,
                rtm_type: RTN_UNICAST as u8,
                rtm_flags: 0,
            },
            gateway: address_attr(RTA_GATEWAY as u16),
            address: gateway,
        })
    }

    /// Sends `msg` and reads the kernel's acknowledgement, which rtnetlink
    /// queues before the send returns.
    fn request<T: Request>(&self, msg: &T) -> Result<()> {
        // SAFETY: every `Request` is repr(C) of integers without padding
        // (asserted above): all its `size_of` bytes are initialized.
        let bytes =
            unsafe { core::slice::from_raw_parts(msg as *const T as *const u8, size_of::<T>()) };
        self.send(bytes)
    }

    /// [`Self::request`]'s bytes; one copy for every message. Plain write
    /// and read (a socket's send and recv without flags), which the init
    /// has linked already.
    #[inline(never)]
    fn send(&self, bytes: &[u8]) -> Result<()> {
        rustix::io::write(&self.0, bytes)?;
        let mut ack = [0u8; ACK_LEN];
        // A longer answer (an error quotes the request) is cut to its
        // start, which holds the error code.
        let len = rustix::io::read(&self.0, &mut ack)?;
        let kind = u16::from_ne_bytes([ack[4], ack[5]]);
        if len < ack.len() || u32::from(kind) != NLMSG_ERROR {
            return Err(Errno::PROTO);
        }
        match i32::from_ne_bytes([ack[16], ack[17], ack[18], ack[19]]) {
            0 => Ok(()),
            error => Err(Errno::from_raw_os_error(error.wrapping_neg())),
        }
    }
}
