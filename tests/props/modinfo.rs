//! The property of the `.modinfo` parser, for the fuzz target `modinfo` and
//! tests/parser_props.rs.

use guestinit::parse::modinfo::{depends, records};

/// Records are the NUL-separated pieces holding a `=`, split at the first
/// one; `depends` lists the non-empty comma-separated names of every
/// `depends=` record. Checked against that model, on any section.
pub fn modinfo(section: &[u8]) {
    let want: Vec<(&[u8], &[u8])> = section
        .split(|&b| b == 0)
        .filter_map(|r| {
            let eq = r.iter().position(|&b| b == b'=')?;
            Some((&r[..eq], &r[eq + 1..]))
        })
        .collect();
    assert_eq!(records(section).collect::<Vec<_>>(), want);
    let names: Vec<&[u8]> = want
        .iter()
        .filter(|(key, _)| *key == b"depends")
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .filter(|name| !name.is_empty())
        .collect();
    assert_eq!(depends(section).collect::<Vec<_>>(), names);
}
