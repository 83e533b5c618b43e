//! A streaming reader of a cpio "newc" archive (magic `070701`): the
//! handover's payload files, which the init unpacks as they arrive on a
//! virtio port, so the input comes in chunks split anywhere. Each entry is
//! a 110-byte ASCII-hex header, its NUL-terminated name padded to a
//! multiple of 4 from the header's start, then its data padded to 4; the
//! entry named `TRAILER!!!` ends the archive. The reader holds one header
//! and one name, and hands the data through without a copy.

use core::ffi::CStr;

use super::num::parse_hex_u64;

/// The longest name kept, its NUL included (PATH_MAX).
pub const NAME_MAX: usize = 4096;

/// Bytes of an entry's header: the magic and 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 110;

/// The header's first bytes (`070702`, the variant with a checksum, is not
/// taken: the host writes the plain one).
pub const MAGIC: &[u8; 6] = b"070701";

/// The name of the last entry, which is not passed on.
pub const TRAILER: &CStr = c"TRAILER!!!";

/// An entry's header: the fields an unpacker uses (`ino`, the device of
/// the archive's file and `check` are read, as hex, and dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub filesize: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// An entry's file type, from its mode's `S_IFMT` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// Its data is the link's target.
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// No type Linux knows: the unpacker skips it.
    Other,
}

impl Header {
    pub fn kind(&self) -> Kind {
        match self.mode & 0o170_000 {
            0o100_000 => Kind::File,
            0o040_000 => Kind::Dir,
            0o120_000 => Kind::Symlink,
            0o020_000 => Kind::CharDevice,
            0o060_000 => Kind::BlockDevice,
            0o010_000 => Kind::Fifo,
            0o140_000 => Kind::Socket,
            _ => Kind::Other,
        }
    }
}

/// Why the bytes are no newc archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A header does not begin with [`MAGIC`].
    BadMagic,
    /// A header field holds a byte that is no hex digit.
    BadHex,
    /// A name (its NUL included) longer than [`NAME_MAX`].
    NameTooLong,
    /// The name's last byte is not its NUL, or a NUL is inside it.
    NameNotTerminated,
    /// A name of no byte but its NUL, or of none at all.
    EmptyName,
    /// The input ended (`finish`) inside an entry or before the trailer;
    /// also what is left after the sink stopped the read.
    Truncated,
    /// Bytes other than zero padding after the trailer.
    AfterTrailer,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::BadMagic => "a header does not begin with 070701",
            Error::BadHex => "a header field is not hex",
            Error::NameTooLong => "a name is longer than 4096 bytes",
            Error::NameNotTerminated => "a name does not end in its only NUL",
            Error::EmptyName => "a name is empty",
            Error::Truncated => "the archive ends before its trailer",
            Error::AfterTrailer => "bytes other than zeros follow the trailer",
        })
    }
}

/// What the reader hands its sink; the sink's own error type stops the read.
pub trait Sink {
    type Error;

    /// An entry begins: its header, and its name with the NUL, straight
    /// from the reader's buffer (the unpacker opens it without a copy).
    fn entry(&mut self, header: &Header, name: &CStr) -> Result<(), Self::Error>;

    /// The entry's data in order, in pieces of any size (none empty), 0 to
    /// `filesize` bytes in all: a symlink's is its target.
    fn data(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;

    /// After the entry's last data byte (also for entries with no data).
    fn end(&mut self) -> Result<(), Self::Error>;
}

/// Why a read stopped: the archive's fault, or the sink's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed<E> {
    Archive(Error),
    Sink(E),
}

/// Where the reader is in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `Reader::filled` bytes of a header are in.
    Header,
    /// `Reader::filled` of the name's `len` bytes are in.
    Name {
        len: usize,
    },
    /// The name's padding, then the data.
    NamePad {
        left: usize,
    },
    Data {
        left: u32,
    },
    /// The data's padding, then the next header (or, after the trailer, the end).
    DataPad {
        left: u32,
    },
    /// The trailer was read: only zeros may follow.
    Done,
    Failed(Error),
}

/// The reader's state machine. Some 4.2 KiB: the init keeps one in a static.
#[derive(Clone, Debug)]
pub struct Reader {
    state: State,
    /// Bytes of the header or name being collected.
    filled: usize,
    /// The entry being read is the trailer: nothing of it reaches the sink.
    trailer: bool,
    header: Header,
    raw: [u8; HEADER_LEN],
    name: [u8; NAME_MAX],
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

/// Up to `n` bytes off the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (front, rest) = input.split_at(n.min(input.len()));
    *input = rest;
    front
}

/// The padding after `len` bytes to the next multiple of 4.
const fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A whole header's fields, or why it is none.
fn parse_header(raw: &[u8; HEADER_LEN]) -> Result<(Header, usize), Error> {
    let (magic, fields) = raw.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(Error::BadMagic);
    }
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor
    // rdevminor namesize check, each 8 hex digits: at most u32::MAX.
    let mut f = [0u32; 13];
    for (value, digits) in f.iter_mut().zip(fields.chunks_exact(8)) {
        *value = parse_hex_u64(digits).ok_or(Error::BadHex)? as u32;
    }
    let [_ino, mode, uid, gid, nlink, mtime, filesize, _, _, rdev_major, rdev_minor, namesize, _] =
        f;
    let header = Header {
        mode,
        uid,
        gid,
        nlink,
        mtime,
        filesize,
        rdev_major,
        rdev_minor,
    };
    match namesize as usize {
        0 | 1 => Err(Error::EmptyName),
        len if len > NAME_MAX => Err(Error::NameTooLong),
        len => Ok((header, len)),
    }
}

impl Reader {
    pub const fn new() -> Reader {
        Reader {
            state: State::Header,
            filled: 0,
            trailer: false,
            header: Header {
                mode: 0,
                uid: 0,
                gid: 0,
                nlink: 0,
                mtime: 0,
                filesize: 0,
                rdev_major: 0,
                rdev_minor: 0,
            },
            raw: [0; HEADER_LEN],
            name: [0; NAME_MAX],
        }
    }

    /// Reads `input`, the archive's next bytes, into `sink`. Any chunking
    /// gives the same calls (only the data pieces' sizes may differ). After
    /// an error the reader stays failed: an archive's error is returned
    /// again, and after the sink's the read is [`Error::Truncated`].
    pub fn feed<S: Sink>(
        &mut self,
        mut input: &[u8],
        sink: &mut S,
    ) -> Result<(), Failed<S::Error>> {
        let result = self.run(&mut input, sink);
        match &result {
            Err(Failed::Archive(e)) => self.state = State::Failed(*e),
            Err(Failed::Sink(_)) => self.state = State::Failed(Error::Truncated),
            Ok(()) => {}
        }
        result
    }

    /// Ok only once the trailer was read (and zeros at most after it, as
    /// the kernel allows).
    pub fn finish(&self) -> Result<(), Error> {
        match self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e),
            _ => Err(Error::Truncated),
        }
    }

    /// Whether the trailer was read.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// The state machine over `input`: each turn consumes bytes or moves
    /// on a state whose part is complete, so the work is linear.
    fn run<S: Sink>(&mut self, input: &mut &[u8], sink: &mut S) -> Result<(), Failed<S::Error>> {
        loop {
            match self.state {
                State::Failed(e) => return Err(Failed::Archive(e)),
                State::Done => {
                    return match input.iter().all(|&b| b == 0) {
                        true => Ok(()),
                        false => Err(Failed::Archive(Error::AfterTrailer)),
                    };
                }
                _ if input.is_empty() && self.needs_input() => return Ok(()),
                State::Header => {
                    let was = self.filled;
                    let room = self.raw.get_mut(was..).unwrap_or_default();
                    let got = take(input, room.len());
                    room.iter_mut().zip(got).for_each(|(to, from)| *to = *from);
                    self.filled = was + got.len();
                    // A wrong magic fails at once (a compressed archive, say).
                    let magic = self.raw.get(..MAGIC.len().min(self.filled));
                    if magic.is_some_and(|m| !MAGIC.starts_with(m)) {
                        return Err(Failed::Archive(Error::BadMagic));
                    }
                    if self.filled == HEADER_LEN {
                        let (header, len) = parse_header(&self.raw).map_err(Failed::Archive)?;
                        self.header = header;
                        self.filled = 0;
                        self.state = State::Name { len };
                    }
                }
                State::Name { len } => {
                    let name = self.name.get_mut(..len).unwrap_or_default();
                    if self.filled < len {
                        let room = name.get_mut(self.filled..).unwrap_or_default();
                        let got = take(input, room.len());
                        room.iter_mut().zip(got).for_each(|(to, from)| *to = *from);
                        self.filled += got.len();
                        continue;
                    }
                    let name = CStr::from_bytes_with_nul(name)
                        .map_err(|_| Failed::Archive(Error::NameNotTerminated))?;
                    self.trailer = name == TRAILER;
                    if !self.trailer {
                        sink.entry(&self.header, name).map_err(Failed::Sink)?;
                    }
                    self.filled = 0;
                    self.state = State::NamePad {
                        left: pad(HEADER_LEN + len),
                    };
                }
                State::NamePad { left: 0 } => {
                    self.state = State::Data {
                        left: self.header.filesize,
                    };
                }
                State::NamePad { left } => {
                    let got = take(input, left).len();
                    self.state = State::NamePad { left: left - got };
                }
                State::Data { left: 0 } => {
                    if !self.trailer {
                        sink.end().map_err(Failed::Sink)?;
                    }
                    self.state = State::DataPad {
                        left: pad(self.header.filesize as usize) as u32,
                    };
                }
                State::Data { left } => {
                    let got = take(input, left as usize);
                    self.state = State::Data {
                        left: left - got.len() as u32,
                    };
                    // The trailer's data, which no writer puts there, is skipped.
                    if !self.trailer {
                        sink.data(got).map_err(Failed::Sink)?;
                    }
                }
                State::DataPad { left: 0 } => {
                    self.state = match self.trailer {
                        true => State::Done,
                        false => State::Header,
                    };
                }
                State::DataPad { left } => {
                    let got = take(input, left as usize).len();
                    self.state = State::DataPad {
                        left: left - got as u32,
                    };
                }
            }
        }
    }

    /// Whether the state waits for bytes, rather than moving on at once.
    fn needs_input(&self) -> bool {
        match self.state {
            State::Header => true,
            State::Name { len } => self.filled < len,
            State::NamePad { left } => left > 0,
            State::Data { left } | State::DataPad { left } => left > 0,
            State::Done | State::Failed(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A newc writer for the tests: an entry of `mode`, `name` (its NUL
    /// added) and `data`, the other fields fixed.
    fn entry(out: &mut Vec<u8>, mode: u32, name: &[u8], data: &[u8]) {
        let fields = [
            7,
            mode,
            1000,
            100,
            1,
            0x5eed,
            data.len() as u32,
            8,
            1,
            5,
            1,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(MAGIC);
        for field in fields {
            out.extend_from_slice(std::format!("{field:08X}").as_bytes());
        }
        out.extend_from_slice(name);
        out.push(0);
        out.resize(out.len() + pad(out.len()), 0);
        out.extend_from_slice(data);
        out.resize(out.len() + pad(out.len()), 0);
    }

    fn trailer(out: &mut Vec<u8>) {
        entry(out, 0, b"TRAILER!!!", b"");
    }

    /// What the sink saw, data merged per entry.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Record {
        calls: Vec<Call>,
        /// Refuse the call after this many.
        stop_after: Option<usize>,
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Call {
        Entry(Header, Vec<u8>),
        Data(Vec<u8>),
        End,
    }

    impl Record {
        fn push(&mut self, call: Call) -> Result<(), &'static str> {
            if self.stop_after == Some(self.calls.len()) {
                return Err("stop");
            }
            match (self.calls.last_mut(), call) {
                (Some(Call::Data(have)), Call::Data(more)) => have.extend(more),
                (_, call) => self.calls.push(call),
            }
            Ok(())
        }
    }

    impl Sink for Record {
        type Error = &'static str;
        fn entry(&mut self, header: &Header, name: &CStr) -> Result<(), Self::Error> {
            self.push(Call::Entry(*header, name.to_bytes_with_nul().to_vec()))
        }
        fn data(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
            assert!(!bytes.is_empty());
            self.push(Call::Data(bytes.to_vec()))
        }
        fn end(&mut self) -> Result<(), Self::Error> {
            self.push(Call::End)
        }
    }

    type Outcome = (Vec<Call>, Result<(), Error>);

    /// `archive` fed in the chunks `cuts` makes (at those offsets), then finished.
    fn read_cut(archive: &[u8], cuts: &[usize]) -> Outcome {
        let mut reader = std::boxed::Box::new(Reader::new());
        let mut sink = Record::default();
        let mut at = 0;
        let mut result = Ok(());
        for &cut in cuts.iter().chain([&archive.len()]) {
            let chunk = &archive[at..cut.max(at)];
            at = cut.max(at);
            if let Err(e) = reader.feed(chunk, &mut sink) {
                let Failed::Archive(e) = e else {
                    panic!("the sink refuses nothing")
                };
                assert_eq!(reader.feed(b"", &mut sink), Err(Failed::Archive(e)));
                result = Err(e);
                break;
            }
        }
        let finished = reader.finish();
        assert_eq!(reader.done(), finished.is_ok());
        if let Err(e) = result {
            assert_eq!(finished, Err(e), "a failed reader stays failed");
        }
        (sink.calls, finished)
    }

    /// Read whole, cut at every offset, and byte by byte: all the same.
    fn read_every_way(archive: &[u8]) -> Outcome {
        let whole = read_cut(archive, &[]);
        for cut in 0..=archive.len() {
            assert_eq!(read_cut(archive, &[cut]), whole, "cut at {cut}");
        }
        let bytes: Vec<usize> = (0..archive.len()).collect();
        assert_eq!(read_cut(archive, &bytes), whole, "byte by byte");
        whole
    }

    fn header(mode: u32, filesize: u32) -> Header {
        Header {
            mode,
            uid: 1000,
            gid: 100,
            nlink: 1,
            mtime: 0x5eed,
            filesize,
            rdev_major: 5,
            rdev_minor: 1,
        }
    }

    #[test]
    fn entries_read_the_same_however_the_input_is_cut() {
        let mut archive = Vec::new();
        entry(&mut archive, 0o040_755, b"etc", b"");
        entry(&mut archive, 0o100_644, b"etc/motd", b"hello\n");
        entry(&mut archive, 0o120_777, b"etc/link", b"motd");
        entry(&mut archive, 0o020_600, b"dev/console", b"");
        entry(&mut archive, 0o100_600, b"e", b"");
        trailer(&mut archive);
        archive.extend([0; 512]);
        let (calls, result) = read_every_way(&archive);
        assert_eq!(result, Ok(()));
        let want = [
            Call::Entry(header(0o040_755, 0), b"etc\0".to_vec()),
            Call::End,
            Call::Entry(header(0o100_644, 6), b"etc/motd\0".to_vec()),
            Call::Data(b"hello\n".to_vec()),
            Call::End,
            Call::Entry(header(0o120_777, 4), b"etc/link\0".to_vec()),
            Call::Data(b"motd".to_vec()),
            Call::End,
            Call::Entry(header(0o020_600, 0), b"dev/console\0".to_vec()),
            Call::End,
            Call::Entry(header(0o100_600, 0), b"e\0".to_vec()),
            Call::End,
        ];
        assert_eq!(calls, want);
        assert_eq!(header(0o120_777, 4).kind(), Kind::Symlink);
        assert_eq!(header(0o020_600, 0).kind(), Kind::CharDevice);
        assert_eq!(header(0o170_000, 0).kind(), Kind::Other);
    }

    #[test]
    fn names_and_data_are_padded_to_4_from_the_headers_start() {
        // Name sizes 1..=5 past the 110-byte header: pads 0, 3, 2, 1, 0.
        for name_len in 1..=8usize {
            for data_len in 0..=5usize {
                let name = std::vec![b'n'; name_len];
                let data = std::vec![b'd'; data_len];
                let mut archive = Vec::new();
                entry(&mut archive, 0o100_644, &name, &data);
                let entry_len = archive.len();
                assert_eq!(entry_len % 4, 0);
                assert_eq!(
                    entry_len,
                    (110 + name_len + 1).next_multiple_of(4) + data_len.next_multiple_of(4)
                );
                trailer(&mut archive);
                let (calls, result) = read_every_way(&archive);
                assert_eq!(result, Ok(()));
                let named = [&name[..], b"\0"].concat();
                let mut want = std::vec![Call::Entry(header(0o100_644, data_len as u32), named)];
                if data_len > 0 {
                    want.push(Call::Data(data));
                }
                want.push(Call::End);
                assert_eq!(calls, want);
            }
        }
    }

    #[test]
    fn a_name_of_exactly_name_max_is_kept_and_one_more_is_too_long() {
        let name = std::vec![b'x'; NAME_MAX - 1];
        let mut archive = Vec::new();
        entry(&mut archive, 0o100_644, &name, b"ab");
        trailer(&mut archive);
        let (calls, result) = read_cut(&archive, &[1, 112, 115, 3000, 4200]);
        assert_eq!(result, Ok(()));
        let Call::Entry(_, got) = &calls[0] else {
            panic!("{calls:?}")
        };
        assert_eq!(got.len(), NAME_MAX);
        let long = std::vec![b'x'; NAME_MAX];
        let mut archive = Vec::new();
        entry(&mut archive, 0o100_644, &long, b"");
        assert_eq!(
            read_cut(&archive, &[]),
            (Vec::new(), Err(Error::NameTooLong))
        );
    }

    #[test]
    fn each_error() {
        let mut good = Vec::new();
        entry(&mut good, 0o100_644, b"a", b"xyz");
        type Corrupt = fn(&mut Vec<u8>);
        let cases: [(Corrupt, Error); 8] = [
            (|a| a[0] = b'1', Error::BadMagic),
            (|a| a[5] = b'2', Error::BadMagic),
            (|a| a[20] = b'g', Error::BadHex),
            (|a| a[100] = b' ', Error::BadHex),
            // namesize 1: the name is its NUL alone.
            (
                |a| a[94..102].copy_from_slice(b"00000001"),
                Error::EmptyName,
            ),
            (
                |a| a[94..102].copy_from_slice(b"00000000"),
                Error::EmptyName,
            ),
            (|a| a[111] = b'b', Error::NameNotTerminated),
            (|a| a[110] = 0, Error::NameNotTerminated),
        ];
        for (corrupt, error) in cases {
            let mut archive = good.clone();
            corrupt(&mut archive);
            trailer(&mut archive);
            let (calls, result) = read_every_way(&archive);
            assert_eq!((calls, result), (Vec::new(), Err(error)));
        }
        // Cut anywhere before the trailer's end: truncated.
        let mut whole = good.clone();
        trailer(&mut whole);
        for end in 0..whole.len() {
            assert_eq!(
                read_cut(&whole[..end], &[]).1,
                Err(Error::Truncated),
                "{end}"
            );
        }
        // Zeros after the trailer are padding; anything else is not.
        let mut after = whole.clone();
        after.extend([0, 0, 0, 0, 0, b'0']);
        let (calls, result) = read_every_way(&after);
        assert_eq!(result, Err(Error::AfterTrailer));
        assert_eq!(calls.len(), 3);
        let mut two = whole.clone();
        two.extend_from_slice(&good);
        assert_eq!(read_cut(&two, &[]).1, Err(Error::AfterTrailer));
    }

    #[test]
    fn the_sinks_error_stops_the_read_and_leaves_it_failed() {
        let mut archive = Vec::new();
        entry(&mut archive, 0o100_644, b"a", b"xyz");
        entry(&mut archive, 0o100_644, b"b", b"");
        trailer(&mut archive);
        for stop_after in 0..4 {
            let mut reader = Reader::new();
            let mut sink = Record {
                stop_after: Some(stop_after),
                ..Record::default()
            };
            assert_eq!(reader.feed(&archive, &mut sink), Err(Failed::Sink("stop")));
            assert_eq!(sink.calls.len(), stop_after);
            let again = reader.feed(&archive, &mut sink);
            assert_eq!(again, Err(Failed::Archive(Error::Truncated)));
            assert_eq!(reader.finish(), Err(Error::Truncated));
            assert!(!reader.done());
        }
    }

    #[test]
    fn a_static_reader_is_const() {
        static READER: Reader = Reader::new();
        assert!(!READER.done());
        assert_eq!(READER.finish(), Err(Error::Truncated));
    }
}
