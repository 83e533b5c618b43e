//! Frame tags: four ASCII characters whose big-endian value is the tag.

/// A frame's message type. Unknown tags are kept, not rejected, so that a
/// newer guest can talk to an older host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

macro_rules! tags {
    ($($(#[$doc:meta])* $name:ident = $text:literal;)*) => {
        impl Tag {
            $($(#[$doc])* pub const $name: Tag = Tag::from_ascii(*$text);)*

            /// Every tag this codec knows by name, core and reserved.
            pub const KNOWN: &'static [Tag] = &[$(Tag::$name),*];
        }
    };
}

tags! {
    /// System ready: mounts done, the port is usable. Empty.
    SRDY = b"SRDY";
    /// Kernel addresses: three u64 LE (phys_base+1, page_offset_base, _text+1),
    /// see [`crate::wire::msg::KernelAddrs`].
    KADR = b"KADR";
    /// Lifecycle: one phase byte, then an optional UTF-8 reason.
    LIFE = b"LIFE";
    /// A chunk of the payload's stdout.
    SOUT = b"SOUT";
    /// A chunk of the payload's stderr.
    SERR = b"SERR";
    /// A chunk of the scheduler's log.
    SCLG = b"SCLG";
    /// Kernel log text.
    DMSG = b"DMSG";
    /// The payload (scenario) starts. Empty.
    SCST = b"SCST";
    /// The payload (scenario) ended. Empty.
    SCPP = b"SCPP";
    /// The scheduler exited during the run: i32 LE.
    SCDX = b"SCDX";
    /// Exit code of a shell-mode exec command: i32 LE.
    EXCX = b"EXCX";
    /// The run's exit code: i32 LE. The last CRC-valid one wins.
    EXIT = b"EXIT";
    /// guestinit: the boot timeline, see [`crate::wire::msg::Timeline`].
    TIME = b"TIME";
    /// guestinit: how the payload ended, see [`crate::wire::msg::WaitStatus`].
    WAIT = b"WAIT";
    /// guestinit, host -> guest: EXIT was read. Empty.
    EACK = b"EACK";
    /// guestinit: the machine is up and waits on the handover port for its
    /// run (`guestinit.handover`); the host may snapshot it now. Empty.
    HRDY = b"HRDY";
    /// guestinit: a kernel splat read from /dev/kmsg, see
    /// [`crate::proto::splat::Splat`].
    KWRN = b"KWRN";
    /// guestinit: a collected entry's header, see [`crate::proto::collect::Entry`].
    CENT = b"CENT";
    /// guestinit: a chunk of the collected entry's bytes.
    CDAT = b"CDAT";
    /// guestinit: the collected entry's end, see [`crate::proto::collect::End`].
    CEND = b"CEND";
    // Used by ktstr 0.50 (its src/vmm/wire.rs) and never reused here.
    STIM = b"STIM";
    STEN = b"STEN";
    SCRR = b"SCRR";
    SCEN = b"SCEN";
    TEST = b"TEST";
    CRSH = b"CRSH";
    PMET = b"PMET";
    PRAW = b"PRAW";
    WPRF = b"WPRF";
    WPRC = b"WPRC";
    WPRG = b"WPRG";
    SNRQ = b"SNRQ";
    SNRP = b"SNRP";
    KORQ = b"KORQ";
    KORP = b"KORP";
    PROB = b"PROB";
    ATTA = b"ATTA";
    BMRY = b"BMRY";
    KBID = b"KBID";
    RDWT = b"RDWT";
    SCSW = b"SCSW";
    SSEF = b"SSEF";
    SSOF = b"SSOF";
    SSTE = b"SSTE";
    SSTO = b"SSTO";
    TDBA = b"TDBA";
    TDBR = b"TDBR";
}

impl Tag {
    pub const fn from_ascii(text: [u8; 4]) -> Tag {
        Tag(u32::from_be_bytes(text))
    }

    /// The four characters of the tag (big-endian order of its value).
    pub const fn ascii(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// Whether every byte of the tag is an upper-case letter or a digit:
    /// the decoder's test of a plausible header.
    pub fn is_well_formed(self) -> bool {
        self.ascii().iter().all(|&b| is_tag_byte(b))
    }

    pub fn is_known(self) -> bool {
        Tag::KNOWN.contains(&self)
    }
}

pub(crate) fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

impl core::fmt::Display for Tag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_well_formed() {
            for b in self.ascii() {
                core::fmt::Write::write_char(f, b as char)?;
            }
            Ok(())
        } else {
            write!(f, "0x{:08x}", self.0)
        }
    }
}
