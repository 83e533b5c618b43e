//! The property of the `/dev/kmsg` record parser and the splat collector,
//! for the fuzz target `kmsg` and tests/parser_props.rs.

use guestinit::parse::kmsg::record;
use guestinit::proto::splat::{Collector, Fed, Splat, MAX_LEN, TEXT_MAX};

/// Each NUL-separated piece of `data` is one read of /dev/kmsg. Whatever
/// the pieces, the parser and collector never panic; a record's text is
/// one line; only kernel records open a splat; every splat is within its
/// bound and round-trips through its frame layout; a record fed `Again`
/// is taken once the splat before it is cleared.
pub fn kmsg(data: &[u8]) {
    let mut c = Collector::<TEXT_MAX>::new();
    let mut frame = vec![0u8; MAX_LEN];
    let mut check = |c: &Collector<TEXT_MAX>| {
        let s = c.ready().expect("a splat is ready");
        assert!(s.text.len() <= TEXT_MAX);
        let n = s.encode(&mut frame).expect("within the bound");
        assert_eq!(Splat::decode(&frame[..n]), Some(s));
    };
    for read in data.split(|&b| b == 0) {
        let Some(r) = record(read) else { continue };
        assert!(!r.text.contains(&b'\n'));
        let was_open = c.is_open();
        if !r.is_kernel() {
            assert_eq!(c.feed(&r), Fed::Taken);
            assert_eq!(c.is_open(), was_open, "a user record changes nothing");
            continue;
        }
        if c.feed(&r) == Fed::Again {
            check(&c);
            c.clear();
            assert_eq!(c.feed(&r), Fed::Taken, "fed again after the clear");
        }
        if c.ready().is_some() {
            check(&c);
            c.clear();
        }
    }
    c.close();
    if c.ready().is_some() {
        check(&c);
    }
}

/// A record written from its fields parses back to them.
pub fn record_round_trip(pri: u32, seq: u64, ts: u64, text: &[u8], dict: &[u8]) {
    let mut buf = format!("{pri},{seq},{ts},-;").into_bytes();
    buf.extend_from_slice(text);
    buf.push(b'\n');
    buf.extend_from_slice(dict);
    let r = record(&buf).expect("a well-formed record");
    assert_eq!(
        (r.facility, u32::from(r.level), r.seq, r.ts_usec),
        (pri >> 3, pri & 7, seq, ts)
    );
    assert_eq!(r.text, text);
}
