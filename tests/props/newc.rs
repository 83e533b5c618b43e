//! Properties of the newc reader (`parse::newc`), shared by the property
//! tests (tests/parser_props.rs) and the fuzz target `newc`: whatever the
//! bytes and however they are cut, the reader makes the calls a whole-input
//! model of the format makes, and an archive written from entries reads
//! back as exactly them. Each panics when its property fails.

use arbitrary::{Arbitrary, Unstructured};
use guestinit::parse::newc::{Error, Failed, Header, Reader, Sink, HEADER_LEN, MAGIC, NAME_MAX};

/// One call of the reader's, data merged per entry (its pieces' sizes are
/// the chunking's, not the archive's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Entry(Header, Vec<u8>),
    Data(Vec<u8>),
    End,
}

/// The calls, and `finish`'s result (or the error that stopped the feeds).
pub type Outcome = (Vec<Call>, Result<(), Error>);

/// A sink that records, and refuses the entry or end after `stop_after` of them.
struct Record {
    calls: Vec<Call>,
    stop_after: Option<usize>,
    marks: usize,
}

impl Record {
    fn mark(&mut self, call: Call) -> Result<(), ()> {
        if self.stop_after == Some(self.marks) {
            return Err(());
        }
        self.marks += 1;
        self.calls.push(call);
        Ok(())
    }
}

impl Sink for Record {
    type Error = ();

    fn entry(&mut self, header: &Header, name: &core::ffi::CStr) -> Result<(), ()> {
        self.mark(Call::Entry(*header, name.to_bytes_with_nul().to_vec()))
    }

    fn data(&mut self, bytes: &[u8]) -> Result<(), ()> {
        assert!(!bytes.is_empty(), "an empty data piece");
        match self.calls.last_mut() {
            Some(Call::Data(have)) => have.extend_from_slice(bytes),
            _ => self.calls.push(Call::Data(bytes.to_vec())),
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), ()> {
        self.mark(Call::End)
    }
}

/// `stream` fed in chunks of `sizes` (then the rest whole), then finished;
/// a failed reader is checked to stay failed.
fn read_in(
    stream: &[u8],
    sizes: impl Iterator<Item = usize>,
    stop_after: Option<usize>,
) -> Outcome {
    let mut reader = Box::new(Reader::new());
    let mut sink = Record {
        calls: Vec::new(),
        stop_after,
        marks: 0,
    };
    let mut rest = stream;
    let mut sizes = sizes.chain(std::iter::once(usize::MAX));
    loop {
        let (chunk, after) = rest.split_at(sizes.next().unwrap().min(rest.len()));
        rest = after;
        match reader.feed(chunk, &mut sink) {
            Ok(()) if rest.is_empty() => break,
            Ok(()) => {}
            Err(Failed::Archive(e)) => {
                let calls = sink.calls.len();
                assert_eq!(reader.feed(b"0", &mut sink), Err(Failed::Archive(e)));
                assert_eq!(reader.finish(), Err(e), "a failed reader stays failed");
                assert_eq!(sink.calls.len(), calls);
                return (sink.calls, Err(e));
            }
            Err(Failed::Sink(())) => {
                assert_eq!(Some(sink.marks), stop_after);
                let again = reader.feed(b"0", &mut sink);
                assert_eq!(again, Err(Failed::Archive(Error::Truncated)));
                return (sink.calls, reader.finish());
            }
        }
    }
    let finished = reader.finish();
    assert_eq!(reader.done(), finished.is_ok());
    (sink.calls, finished)
}

/// The format read over the whole input at once, independently of the
/// reader: the calls it makes, and how the archive ends.
pub fn model(stream: &[u8]) -> Outcome {
    let mut calls = Vec::new();
    let mut at = 0;
    let outcome = loop {
        let rest = &stream[at..];
        if !MAGIC.starts_with(&rest[..rest.len().min(6)]) {
            break Err(Error::BadMagic);
        }
        let Some(raw) = rest.get(..HEADER_LEN) else {
            break Err(Error::Truncated);
        };
        let mut fields = raw[6..].chunks(8).map(|digits| {
            digits
                .iter()
                .all(u8::is_ascii_hexdigit)
                .then(|| u32::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap())
        });
        let Some(f) = (0..13)
            .map(|_| fields.next().unwrap())
            .collect::<Option<Vec<u32>>>()
        else {
            break Err(Error::BadHex);
        };
        let header = Header {
            mode: f[1],
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            filesize: f[6],
            rdev_major: f[9],
            rdev_minor: f[10],
        };
        let name_len = f[11] as usize;
        if name_len < 2 {
            break Err(Error::EmptyName);
        }
        if name_len > NAME_MAX {
            break Err(Error::NameTooLong);
        }
        let Some(name) = rest.get(HEADER_LEN..HEADER_LEN + name_len) else {
            break Err(Error::Truncated);
        };
        if name.iter().position(|&b| b == 0) != Some(name_len - 1) {
            break Err(Error::NameNotTerminated);
        }
        let trailer = name == b"TRAILER!!!\0";
        if !trailer {
            calls.push(Call::Entry(header, name.to_vec()));
        }
        let data_at = (HEADER_LEN + name_len).next_multiple_of(4);
        let Some(rest) = rest.get(data_at..) else {
            break Err(Error::Truncated);
        };
        let size = header.filesize as usize;
        let data = &rest[..size.min(rest.len())];
        if !trailer && !data.is_empty() {
            calls.push(Call::Data(data.to_vec()));
        }
        if data.len() < size {
            break Err(Error::Truncated);
        }
        if !trailer {
            calls.push(Call::End);
        }
        let Some(rest) = rest.get(size.next_multiple_of(4)..) else {
            break Err(Error::Truncated);
        };
        if trailer {
            break match rest.iter().all(|&b| b == 0) {
                true => Ok(()),
                false => Err(Error::AfterTrailer),
            };
        }
        at = stream.len() - rest.len();
    };
    (calls, outcome)
}

/// One entry as the tests' writer writes it.
#[derive(Clone, Debug, Arbitrary)]
pub struct Entry {
    pub mode: u32,
    pub uid: u32,
    pub mtime: u32,
    /// Without the NUL, which the writer adds.
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

impl Entry {
    /// The header the reader should make of this entry.
    pub fn header(&self) -> Header {
        Header {
            mode: self.mode,
            uid: self.uid,
            gid: self.uid ^ 1,
            nlink: 1,
            mtime: self.mtime,
            filesize: self.data.len() as u32,
            rdev_major: self.mode >> 20,
            rdev_minor: self.mode & 0xff,
        }
    }

    /// Whether a reader takes it: a name of 1 to NAME_MAX - 1 bytes, no
    /// NUL in them, and not the trailer's.
    pub fn is_valid(&self) -> bool {
        (1..NAME_MAX).contains(&self.name.len())
            && !self.name.contains(&0)
            && self.name != b"TRAILER!!!"
    }

    /// Writes the entry: header (the fields the reader drops hold other
    /// values, to show they are dropped), name and data, each padded.
    pub fn write(&self, out: &mut Vec<u8>) {
        let h = self.header();
        let fields = [
            0xfeed,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            h.filesize,
            0xa,
            0xb,
            h.rdev_major,
            h.rdev_minor,
            self.name.len() as u32 + 1,
            0xc,
        ];
        let start = out.len();
        out.extend_from_slice(MAGIC);
        for (i, field) in fields.iter().enumerate() {
            // Either case of hex digit.
            let digits = match i % 2 {
                0 => format!("{field:08x}"),
                _ => format!("{field:08X}"),
            };
            out.extend_from_slice(digits.as_bytes());
        }
        out.extend_from_slice(&self.name);
        out.push(0);
        out.resize(start + (out.len() - start).next_multiple_of(4), 0);
        out.extend_from_slice(&self.data);
        out.resize(start + (out.len() - start).next_multiple_of(4), 0);
    }

    /// The calls a reader makes for it.
    fn calls(&self) -> Vec<Call> {
        let name = [&self.name[..], b"\0"].concat();
        let mut calls = vec![Call::Entry(self.header(), name)];
        if !self.data.is_empty() {
            calls.push(Call::Data(self.data.clone()));
        }
        calls.push(Call::End);
        calls
    }
}

/// The trailer, as writers write it.
pub fn trailer(out: &mut Vec<u8>) {
    let entry = Entry {
        mode: 0,
        uid: 0,
        mtime: 0,
        name: b"TRAILER!!!".to_vec(),
        data: Vec::new(),
    };
    entry.write(out);
}

/// An archive of entries, perhaps its trailer, then bytes overwritten
/// (`edits`, at offsets modulo its length) and bytes after it (`tail`);
/// read in chunks of `cuts` (cycled), and by a sink that refuses the
/// `stop_after`th entry or end.
#[derive(Clone, Debug, Arbitrary)]
pub struct NewcInput {
    pub entries: Vec<Entry>,
    pub trailer: bool,
    pub edits: Vec<(u16, u8)>,
    pub tail: Vec<u8>,
    pub cuts: Vec<u16>,
    pub stop_after: Option<u8>,
}

impl NewcInput {
    pub fn archive(&self) -> Vec<u8> {
        let mut archive = Vec::new();
        for entry in &self.entries {
            entry.write(&mut archive);
        }
        if self.trailer {
            trailer(&mut archive);
        }
        let len = archive.len();
        for &(at, byte) in self.edits.iter().filter(|_| len > 0) {
            archive[usize::from(at) % len] = byte;
        }
        archive.extend_from_slice(&self.tail);
        archive
    }
}

/// Target `newc`: the reader on the input's archive, cut as it says, byte
/// by byte and whole, makes the model's calls and ends as it does; a sink
/// that stops it sees a prefix of them; an archive written from valid
/// entries, untouched, reads back as exactly them.
pub fn newc(input: &NewcInput) {
    let stream = input.archive();
    let want = model(&stream);
    let cuts = || input.cuts.iter().map(|&c| usize::from(c) % 300).cycle();
    let cycled = match input.cuts.is_empty() {
        true => read_in(&stream, std::iter::empty(), None),
        false => read_in(&stream, cuts().take(stream.len() + 1), None),
    };
    assert_eq!(cycled, want, "cut by {:?}", input.cuts);
    assert_eq!(read_in(&stream, std::iter::empty(), None), want, "whole");
    assert_eq!(
        read_in(&stream, std::iter::repeat(1), None),
        want,
        "byte by byte"
    );
    if let Some(stop) = input.stop_after {
        let stop = usize::from(stop);
        let (calls, result) = read_in(&stream, cuts().take(stream.len() + 1), Some(stop));
        let marks = want.0.iter().filter(|c| !matches!(c, Call::Data(_)));
        if marks.count() > stop {
            // The calls before the refused one; the data before it is all there.
            let refused = want
                .0
                .iter()
                .enumerate()
                .filter(|(_, c)| !matches!(c, Call::Data(_)))
                .nth(stop)
                .unwrap()
                .0;
            assert_eq!(
                (calls, result),
                (want.0[..refused].to_vec(), Err(Error::Truncated))
            );
        } else {
            assert_eq!((calls, result), want);
        }
    }
    let clean = input.edits.is_empty() && input.tail.iter().all(|&b| b == 0);
    if clean && input.trailer && input.entries.iter().all(Entry::is_valid) {
        let calls: Vec<Call> = input.entries.iter().flat_map(Entry::calls).collect();
        assert_eq!(want, (calls, Ok(())));
    }
}

/// Runs the property of fuzz target `target` on its raw input, decoded as
/// libFuzzer's harness decodes it; `false` if no such target.
pub fn replay(target: &str, data: &[u8]) -> bool {
    match target {
        "newc" => {
            if let Ok(input) = NewcInput::arbitrary_take_rest(Unstructured::new(data)) {
                newc(&input);
            }
        }
        _ => return false,
    }
    true
}
