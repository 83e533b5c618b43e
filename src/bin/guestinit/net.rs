//! The guest's network on the host's side: `--net user` (QEMU's user-mode
//! network, slirp) and `--net-forward HOST_PORT:GUEST_PORT` as the user
//! wrote them, the check that each host port is free before the boot, the
//! modules and files the guest needs for it, and the driver check.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};

use clap::ValueEnum;
use guestinit::proto::net;

use crate::error::{Error, Result};

/// `--net`'s networks. (Plain comments on the values: a value's doc
/// comment becomes a "Possible values" list that turns every option's
/// `--help` into two lines.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetMode {
    // QEMU's user-mode network: the host's loopback is 10.0.2.2 from the
    // guest, no privileges, nothing to set up on the host.
    User,
}

/// One `--net-forward`: a TCP port on the host's 127.0.0.1 that reaches
/// the guest's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
}

impl Forward {
    /// `HOST_PORT:GUEST_PORT`, each 1 to 65535.
    pub fn parse(spec: &str) -> std::result::Result<Forward, String> {
        let (host, guest) = spec
            .split_once(':')
            .ok_or("a forward is HOST_PORT:GUEST_PORT, e.g. 8080:80")?;
        let port = |text: &str, which: &str| match text.parse::<u16>() {
            Ok(0) => Err(format!("{which} port 0 is no port: give 1 to 65535")),
            Ok(port) => Ok(port),
            Err(_) => Err(format!(
                "{which} port {text:?} is not a number from 1 to 65535"
            )),
        };
        Ok(Forward {
            host: port(host, "host")?,
            guest: port(guest, "guest")?,
        })
    }
}

/// The modules a NIC needs, where the kernel has them as modules; their
/// dependencies (net_failover, failover) come from their `.modinfo`.
pub const MODULES: &[&str] = &["virtio_net"];
/// The config option that builds virtio_net in.
pub const DRIVER_OPTION: &str = "CONFIG_VIRTIO_NET";

/// The guest's `/etc/resolv.conf`: slirp's DNS forwarder. Packed by the
/// host, which chose the network, so the init need not write files.
pub fn resolv_conf() -> Vec<u8> {
    format!("nameserver {}\n", Ipv4Addr::from(net::DNS)).into_bytes()
}

/// Each host port is forwarded once and is free now: bound on 127.0.0.1
/// and released at once, before QEMU binds it. A port taken between this
/// check and QEMU's start is QEMU's failure (250, with its words).
pub fn check_forwards(forwards: &[Forward]) -> Result<()> {
    let mut seen = HashSet::new();
    for forward in forwards {
        if !seen.insert(forward.host) {
            return Err(Error::ForwardTwice { port: forward.host });
        }
        match TcpListener::bind((Ipv4Addr::LOCALHOST, forward.host)) {
            Ok(listener) => drop(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(Error::PortTaken { port: forward.host })
            }
            Err(source) => {
                return Err(Error::PortUnusable {
                    port: forward.host,
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_are_two_ports_from_1_to_65535() {
        assert_eq!(
            Forward::parse("8080:80"),
            Ok(Forward {
                host: 8080,
                guest: 80
            })
        );
        for (spec, why) in [
            ("8080", "a forward is HOST_PORT:GUEST_PORT"),
            ("0:80", "host port 0 is no port"),
            ("8080:65536", "guest port \"65536\" is not a number"),
            ("x:80", "host port \"x\" is not a number"),
            (":80", "host port \"\" is not a number"),
            ("1:2:3", "guest port \"2:3\" is not a number"),
        ] {
            let err = Forward::parse(spec).unwrap_err();
            assert!(err.starts_with(why), "{spec}: {err}");
        }
    }

    /// A listener on a port below the kernel's ephemeral range. Port 0
    /// would hand out an ephemeral one, which a parallel test's `bind(0)`
    /// or `connect` may take as soon as this test lets it go.
    fn listener_below_the_ephemeral_range() -> TcpListener {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
        let start = low.saturating_sub(8000).max(1024);
        let offset = std::process::id() as u16 % 4000;
        (0..4000u16)
            .map(|i| start + (offset + i) % 4000)
            .find_map(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok())
            .expect("a free port below the ephemeral range")
    }

    #[test]
    fn a_taken_or_twice_forwarded_port_is_refused_by_number() {
        let taken = listener_below_the_ephemeral_range();
        let port = taken.local_addr().unwrap().port();
        let forward = |host| Forward { host, guest: 80 };
        match check_forwards(&[forward(port)]) {
            Err(e @ Error::PortTaken { .. }) => {
                assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}")
            }
            other => panic!("{other:?}"),
        }
        drop(taken);
        // Free now, and released again by the check.
        check_forwards(&[forward(port)]).unwrap();
        check_forwards(&[forward(port)]).unwrap();
        assert!(matches!(
            check_forwards(&[forward(port), forward(port)]),
            Err(Error::ForwardTwice { .. })
        ));
    }

    #[test]
    fn resolv_conf_names_slirps_dns() {
        assert_eq!(resolv_conf(), b"nameserver 10.0.2.3\n");
    }
}
