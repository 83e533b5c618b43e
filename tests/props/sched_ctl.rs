//! Properties of the payload's scheduler requests and the init's replies
//! (`proto::sched_ctl`): the round trips (tests/codec_props.rs) and the
//! init's decoder on any bytes, which the fuzz target `sched_ctl` shares.
//! Each panics when its property fails.

use guestinit::proto::sched_ctl::{
    encode_words, Args, Code, Reply, Request, RequestError, MAX_ARGS, MAX_ARGS_BYTES, MAX_REQUEST,
    MAX_TEXT,
};

/// A request as the property tests build it: a verb (0 stop, 1 start,
/// 2 status, anything else a word no verb is) and arguments.
#[derive(Clone, Debug)]
pub struct Words {
    pub verb: u8,
    pub args: Vec<Vec<u8>>,
}

/// The words with every NUL taken out of each, an empty one made `x`.
fn clean(words: &[Vec<u8>]) -> Vec<Vec<u8>> {
    words
        .iter()
        .map(|w| {
            let w: Vec<u8> = w.iter().copied().filter(|&b| b != 0).collect();
            if w.is_empty() {
                b"x".to_vec()
            } else {
                w
            }
        })
        .collect()
}

/// What the protocol says of `words` (the client's argv after `sched`),
/// independently of the decoder: the request's verb and arguments, or why
/// it is refused.
fn model(words: &[Vec<u8>]) -> Result<(u8, Vec<Vec<u8>>), RequestError> {
    let Some((verb, args)) = words.split_first() else {
        return Err(RequestError::Empty);
    };
    if words.iter().any(Vec::is_empty) {
        return Err(RequestError::EmptyWord);
    }
    let len: usize = words.iter().map(|w| w.len() + 1).sum();
    if len > MAX_REQUEST {
        return Err(RequestError::TooLong);
    }
    let verb = match verb.as_slice() {
        b"stop" => 0,
        b"start" => 1,
        b"status" => 2,
        _ => return Err(RequestError::UnknownVerb),
    };
    if verb != 1 && !args.is_empty() {
        return Err(RequestError::Extra);
    }
    if args.len() > MAX_ARGS {
        return Err(RequestError::TooManyArgs);
    }
    if args.iter().map(|w| w.len() + 1).sum::<usize>() > MAX_ARGS_BYTES {
        return Err(RequestError::TooLong);
    }
    Ok((verb, args.to_vec()))
}

fn verb_of(request: &Request<'_>) -> u8 {
    match request {
        Request::Stop => 0,
        Request::Start { .. } => 1,
        Request::Status => 2,
    }
}

/// The client's words, as it sends them, decode as the model says; a
/// request that decodes encodes back to the same bytes.
pub fn round_trip(input: &Words) {
    let verb: &[u8] = match input.verb % 4 {
        0 => b"stop",
        1 => b"start",
        2 => b"status",
        _ => b"reboot",
    };
    let mut words = vec![verb.to_vec()];
    words.extend(clean(&input.args));
    let mut bytes = vec![0u8; MAX_REQUEST * 2];
    let len = encode_words(words.iter().map(Vec::as_slice), &mut bytes).expect("room");
    let bytes = &bytes[..len];
    let got = Request::decode(bytes);
    match (model(&words), got) {
        (Ok((verb, args)), Ok(request)) => {
            assert_eq!(verb_of(&request), verb);
            let got_args: Vec<Vec<u8>> = match request {
                Request::Start { args } => args.iter().map(<[u8]>::to_vec).collect(),
                _ => vec![],
            };
            assert_eq!(got_args, args);
            let mut again = vec![0u8; len];
            assert_eq!(request.encode(&mut again), Some(len));
            assert_eq!(again, bytes);
        }
        (want, got) => assert_eq!(want.map(|_| ()), got.map(|_| ()), "{words:?}"),
    }
}

/// Target `sched_ctl`: the init's decoder on any bytes never panics, keeps
/// within the bounds, and what it accepts encodes back to exactly its input.
pub fn decode_bytes(data: &[u8]) {
    let Ok(request) = Request::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_REQUEST);
    if let Request::Start { args } = request {
        assert!(args.iter().count() <= MAX_ARGS);
        assert!(args.bytes().len() <= MAX_ARGS_BYTES);
        assert!(args.iter().all(|w| !w.is_empty() && !w.contains(&0)));
    } else {
        assert!(matches!(request, Request::Stop | Request::Status));
    }
    let mut again = vec![0u8; data.len()];
    assert_eq!(request.encode(&mut again), Some(data.len()));
    assert_eq!(again, data);
    assert!(Args::NONE.is_empty());
}

/// A reply decodes to itself; its text is cut at [`MAX_TEXT`].
pub fn reply_round_trip(code: u8, text: &[u8]) {
    let code = [Code::Ok, Code::Failed, Code::Refused, Code::NotRunning][usize::from(code % 4)];
    let mut out = vec![0u8; MAX_TEXT + 1];
    let n = Reply { code, text }.encode(&mut out);
    let got = Reply::decode(&out[..n]).expect("a reply");
    assert_eq!(got.code, code);
    assert_eq!(got.text, &text[..text.len().min(MAX_TEXT)]);
}

/// Runs the property of fuzz target `target` on its raw input; `false` if
/// no such target.
pub fn replay(target: &str, data: &[u8]) -> bool {
    match target {
        "sched_ctl" => decode_bytes(data),
        _ => return false,
    }
    true
}
