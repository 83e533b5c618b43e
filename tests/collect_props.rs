//! `--collect`'s properties (tests/props/collect.rs) on stable, shared with
//! the fuzz targets `collect` and `collect_request`, and their seeds replayed.

#[path = "props/collect.rs"]
mod collect;
#[path = "props/replay.rs"]
mod replay;

use collect::Req;
use guestinit::proto::collect::Kind;
use proptest::prelude::*;

fn dir() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(&b"/ab \n.:"[..]), 0..12).prop_map(|mut d| {
        d.insert(0, b'/');
        d
    })
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        any::<u64>().prop_map(Req::Max),
        dir().prop_map(Req::Dir),
        dir().prop_map(Req::Cores),
    ]
}

/// Paths rich in what the receiver must refuse.
fn path() -> impl Strategy<Value = Vec<u8>> {
    let parts = prop::sample::select(vec![
        &b".."[..],
        b".",
        b"",
        b"a",
        b"b c",
        b"/",
        b"\n",
        b"\0",
    ]);
    prop::collection::vec(parts, 0..6).prop_map(|p| p.join(&b'/'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_records_round_trip(records in prop::collection::vec(req(), 0..8)) {
        collect::request_round_trip(&records);
    }

    #[test]
    fn request_on_any_bytes(file in prop::collection::vec(prop::sample::select(&b"maxdircoes/01\0"[..]), 0..48)) {
        collect::request_bytes(&file);
    }

    #[test]
    fn records_on_any_bytes(data in prop::collection::vec(any::<u8>(), 0..48), path in path()) {
        collect::records(&data);
        collect::records(&path);
    }

    #[test]
    fn forged_frames_write_nothing_outside_host_dir(
        steps in prop::collection::vec((path(), 0..3u8, prop::collection::vec(any::<u8>(), 0..8)), 1..6),
        noise in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let mut stream = Vec::new();
        for (path, kind, data) in &steps {
            let kind = [Kind::File, Kind::Dir, Kind::Symlink][usize::from(*kind)];
            stream.extend(collect::forged_stream(path, kind, data));
        }
        stream.extend(noise);
        collect::receiver_frames(&stream);
    }
}

#[test]
fn a_links_escape_is_refused() {
    let mut stream = collect::forged_stream(b"l", Kind::Symlink, b"../outside");
    stream.extend(collect::forged_stream(b"l/victim", Kind::File, b"evil"));
    stream.extend(collect::forged_stream(
        b"../outside/victim",
        Kind::File,
        b"evil",
    ));
    collect::receiver_frames(&stream);
}

#[test]
fn fuzz_seeds_replay() {
    replay::all(&["collect", "collect_request"], |target, data| {
        match target {
            "collect" => {
                collect::records(data);
                collect::receiver_frames(data);
            }
            "collect_request" => collect::request_bytes(data),
            _ => return false,
        }
        true
    });
}
