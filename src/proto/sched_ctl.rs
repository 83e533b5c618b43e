//! The payload's requests to the init about the scheduler, and the init's
//! replies, on the control socket [`SOCKET`] (docs/PROTOCOL.md, the
//! scheduler on the payload's request). The client is the init binary run
//! as `/init sched WORD...`: its request is those words, each ended by NUL,
//! written whole before it shuts its side down; the reply is one code byte
//! (the client's exit code) then the text it prints. The payload is not
//! trusted: [`Request::decode`] bounds everything and names what it refuses.

use core::fmt;

/// The control socket (a unix stream socket in a 0700 directory: root's).
pub const SOCKET: &str = "/run/guestinit/sched.sock";
/// Its directory, which the init makes.
pub const DIR: &str = "/run/guestinit";

/// The verbs, as the client's words spell them.
pub const STOP: &[u8] = b"stop";
pub const START: &[u8] = b"start";
pub const STATUS: &[u8] = b"status";

/// Arguments a `start` may give, and their bytes with their terminators:
/// /sched_args' own bounds (`proto::limit`).
pub const MAX_ARGS: usize = super::limit::SCHED_ARGS;
pub const MAX_ARGS_BYTES: usize = super::limit::SCHED_ARGS_BYTES;
/// A request's bytes at most: `start\0` and the arguments.
pub const MAX_REQUEST: usize = START.len() + 1 + MAX_ARGS_BYTES;

/// One request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Stop the scheduler, as the cleanup does.
    Stop,
    /// Start it, after stopping the running one: with /sched_args when
    /// `args` is empty (a restart), else with these (a replacement).
    Start { args: Args<'a> },
    /// Its pid and sched_ext's state.
    Status,
}

/// A start's arguments: non-empty words, each ended by NUL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args<'a>(&'a [u8]);

impl<'a> Args<'a> {
    pub const NONE: Args<'static> = Args(b"");

    /// The words' bytes, each with its NUL.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The words, without their NULs.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> {
        let text = self.0.strip_suffix(b"\0").unwrap_or(self.0);
        text.split(|&b| b == 0).filter(|_| !self.0.is_empty())
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    Empty,
    /// A word not ended by NUL (the request was cut short).
    Unterminated,
    EmptyWord,
    UnknownVerb,
    /// `stop` and `status` take no arguments.
    Extra,
    TooManyArgs,
    TooLong,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestError::Empty => "an empty request",
            RequestError::Unterminated => "a request cut short",
            RequestError::EmptyWord => "an empty argument",
            RequestError::UnknownVerb => "not stop, start [ARGS...] or status",
            RequestError::Extra => "stop and status take no arguments",
            RequestError::TooManyArgs => "more than 63 arguments",
            RequestError::TooLong => "arguments over 4096 bytes",
        })
    }
}

impl<'a> Request<'a> {
    /// The request in `bytes`, checked against every bound.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, RequestError> {
        if bytes.len() > MAX_REQUEST {
            return Err(RequestError::TooLong);
        }
        let Some(text) = bytes.strip_suffix(b"\0") else {
            return Err(match bytes.is_empty() {
                true => RequestError::Empty,
                false => RequestError::Unterminated,
            });
        };
        if text.split(|&b| b == 0).any(<[u8]>::is_empty) {
            return Err(RequestError::EmptyWord);
        }
        let verb_len = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        let (verb, rest) = bytes.split_at(verb_len + 1);
        let args = Args(rest);
        let request = match &verb[..verb_len] {
            STOP => Request::Stop,
            STATUS => Request::Status,
            START => Request::Start { args },
            _ => return Err(RequestError::UnknownVerb),
        };
        if !matches!(request, Request::Start { .. }) && !args.is_empty() {
            return Err(RequestError::Extra);
        }
        if args.iter().count() > MAX_ARGS {
            return Err(RequestError::TooManyArgs);
        }
        if rest.len() > MAX_ARGS_BYTES {
            return Err(RequestError::TooLong);
        }
        Ok(request)
    }

    /// Its bytes into `out`; the length, or None when `out` is too small.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let (verb, args): (&[u8], &[u8]) = match self {
            Request::Stop => (STOP, b""),
            Request::Status => (STATUS, b""),
            Request::Start { args } => (START, args.0),
        };
        let len = verb.len() + 1 + args.len();
        let out = out.get_mut(..len)?;
        out[..verb.len()].copy_from_slice(verb);
        out[verb.len()] = 0;
        out[verb.len() + 1..].copy_from_slice(args);
        Some(len)
    }
}

/// Words as a request's bytes (what the client sends: its argv after
/// `sched`, unchecked; the init checks); the length, or None when `out`
/// is too small.
pub fn encode_words<'w>(words: impl Iterator<Item = &'w [u8]>, out: &mut [u8]) -> Option<usize> {
    let mut len = 0;
    for word in words {
        let end = len + word.len();
        out.get_mut(len..end)?.copy_from_slice(word);
        *out.get_mut(end)? = 0;
        len = end + 1;
    }
    Some(len)
}

/// The outcome of a request: the reply's first byte, and the client's exit
/// code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Attached, detached, or (status) running.
    Ok = 0,
    /// The change failed; the text says why.
    Failed = 1,
    /// The request was refused (a bad request, or the run is ending).
    Refused = 2,
    /// No scheduler is running (status, or a stop of a stopped one).
    NotRunning = 3,
}

/// The client's exit code when it reaches no init: no control socket, so
/// the run has no scheduler (or this is no guestinit guest).
pub const NO_SOCKET: u8 = 4;
/// The client's exit code for a reply it cannot read.
pub const BAD_REPLY: u8 = 5;
/// The reply's text at most.
pub const MAX_TEXT: usize = 240;

/// One reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub code: Code,
    /// One line of UTF-8, without its newline.
    pub text: &'a [u8],
}

impl<'a> Reply<'a> {
    pub fn decode(bytes: &'a [u8]) -> Option<Reply<'a>> {
        let (&code, text) = bytes.split_first()?;
        let code = [Code::Ok, Code::Failed, Code::Refused, Code::NotRunning]
            .into_iter()
            .find(|c| *c as u8 == code)?;
        (text.len() <= MAX_TEXT).then_some(Reply { code, text })
    }

    /// Its bytes into `out` (text past [`MAX_TEXT`] or `out` is cut).
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let Some((first, rest)) = out.split_first_mut() else {
            return 0;
        };
        *first = self.code as u8;
        let n = self.text.len().min(MAX_TEXT).min(rest.len());
        rest[..n].copy_from_slice(&self.text[..n]);
        1 + n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_the_verbs_and_bad_requests_are_named() {
        assert_eq!(Request::decode(b"stop\0"), Ok(Request::Stop));
        assert_eq!(Request::decode(b"status\0"), Ok(Request::Status));
        let Ok(Request::Start { args }) = Request::decode(b"start\0-k\0-s\x00") else {
            panic!("a start")
        };
        assert_eq!(
            args.iter().collect::<std::vec::Vec<_>>(),
            [b"-k".as_slice(), b"-s"]
        );
        assert_eq!(
            Request::decode(b"start\0"),
            Ok(Request::Start { args: Args::NONE })
        );
        assert_eq!(Request::decode(b""), Err(RequestError::Empty));
        assert_eq!(Request::decode(b"stop"), Err(RequestError::Unterminated));
        assert_eq!(Request::decode(b"reboot\0"), Err(RequestError::UnknownVerb));
        assert_eq!(Request::decode(b"stop\0now\0"), Err(RequestError::Extra));
        assert_eq!(Request::decode(b"start\0\0"), Err(RequestError::EmptyWord));
        let many = b"start\0"
            .iter()
            .chain(b"x\0".repeat(64).iter())
            .copied()
            .collect::<std::vec::Vec<u8>>();
        assert_eq!(Request::decode(&many), Err(RequestError::TooManyArgs));
    }

    #[test]
    fn a_reply_is_its_code_then_its_text() {
        let mut buf = [0u8; 300];
        let n = Reply {
            code: Code::NotRunning,
            text: b"stopped",
        }
        .encode(&mut buf);
        assert_eq!(&buf[..n], b"\x03stopped");
        assert_eq!(
            Reply::decode(&buf[..n]),
            Some(Reply {
                code: Code::NotRunning,
                text: b"stopped"
            })
        );
        assert_eq!(Reply::decode(b"\x09x"), None);
        assert_eq!(Reply::decode(b""), None);
    }
}
