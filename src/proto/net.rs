//! The guest's network identity, which both sides agree on: its host name
//! (`guestinit.hostname`, checked on the host and again by the init's
//! parse) and the addresses of QEMU's user-mode network (`guestinit.net`),
//! which the host gives QEMU and the init gives eth0, with no DHCP.

use core::fmt;

/// The host name when the host names none.
pub const DEFAULT_HOSTNAME: &str = "guestinit";
/// The longest host name: the kernel's `__NEW_UTS_LEN`.
pub const HOSTNAME_MAX: usize = 64;

/// The interface virtio-net gives the guest (the first, and only, NIC).
pub const INTERFACE: &str = "eth0";
/// QEMU's user network (slirp), written out on its `-netdev user` so that
/// the host's and the guest's addresses come from here alone.
pub const NETWORK: [u8; 4] = [10, 0, 2, 0];
pub const PREFIX_LEN: u8 = 24;
/// The guest's address on it.
pub const ADDRESS: [u8; 4] = [10, 0, 2, 15];
/// The gateway, which is also the host's loopback seen from the guest.
pub const GATEWAY: [u8; 4] = [10, 0, 2, 2];
/// slirp's DNS forwarder, which the guest's /etc/resolv.conf names.
pub const DNS: [u8; 4] = [10, 0, 2, 3];

/// A host name for the guest: 1 to [`HOSTNAME_MAX`] bytes of ASCII
/// letters, digits, `-` and `.`, so one word of the kernel command line
/// carries it as it is and sethostname(2) takes it. Borrowed: the init's
/// from its command line buffer, the host's from its arguments.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hostname<'a>(&'a [u8]);

/// A host name's bytes.
fn allowed(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.'
}

/// Why a name is not a [`Hostname`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadHostname {
    Empty,
    TooLong { len: usize },
    Byte { byte: u8 },
}

impl<'a> Hostname<'a> {
    pub fn new(name: &'a [u8]) -> Result<Hostname<'a>, BadHostname> {
        if let Some(&byte) = name.iter().find(|&&b| !allowed(b)) {
            return Err(BadHostname::Byte { byte });
        }
        match name.len() {
            0 => Err(BadHostname::Empty),
            1..=HOSTNAME_MAX => Ok(Hostname(name)),
            len => Err(BadHostname::TooLong { len }),
        }
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The name as text: it is ASCII.
    pub fn as_str(&self) -> &'a str {
        core::str::from_utf8(self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Hostname<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hostname").field(&self.as_str()).finish()
    }
}

impl fmt::Display for BadHostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadHostname::Empty => f.write_str("a host name cannot be empty"),
            BadHostname::TooLong { len } => {
                write!(f, "{len} bytes: a host name has at most {HOSTNAME_MAX}")
            }
            BadHostname::Byte { byte } => write!(
                f,
                "{:?} is not allowed: a host name has ASCII letters, digits, '-' and '.'",
                char::from(*byte)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_allowed_bytes_up_to_64_are_hostnames() {
        let name = Hostname::new(b"vm-1.test").unwrap();
        assert_eq!(name.as_bytes(), b"vm-1.test");
        assert_eq!(std::format!("{name:?}"), "Hostname(\"vm-1.test\")");
        let longest = [b'a'; HOSTNAME_MAX];
        assert_eq!(Hostname::new(&longest).unwrap().as_bytes(), &longest[..]);
        assert_eq!(
            Hostname::new(&[b'a'; 65]),
            Err(BadHostname::TooLong { len: 65 })
        );
        assert_eq!(Hostname::new(b""), Err(BadHostname::Empty));
        for bad in [&b"a b"[..], b"a_b", b"a=b", b"caf\xc3\xa9", b"a\0"] {
            assert!(
                matches!(Hostname::new(bad), Err(BadHostname::Byte { .. })),
                "{bad:?}"
            );
        }
        let said = std::string::ToString::to_string(&BadHostname::Byte { byte: b'_' });
        assert!(said.starts_with("'_' is not allowed"), "{said}");
    }
}
