//! ELF notes: a name size, a value size and a type, then the name and the
//! value, each padded to 4 bytes. The kernel's `/sys/kernel/notes` is its
//! `.notes` section raw, and a vmlinux's PT_NOTE segments are the same
//! records, so the init and the host read the build-id with one parser.

/// `NT_GNU_BUILD_ID`, under the name "GNU".
const NT_GNU_BUILD_ID: u32 = 3;

use crate::wire::msg::BuildId;

/// One note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// With its NUL, as written (`b"GNU\0"`).
    pub name: &'a [u8],
    pub kind: u32,
    pub value: &'a [u8],
}

/// The notes of one section or segment, in order; a record cut short or
/// past the end ends the walk.
pub fn notes(bytes: &[u8]) -> Notes<'_> {
    Notes { rest: bytes }
}

pub struct Notes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Notes<'a> {
    type Item = Note<'a>;

    fn next(&mut self) -> Option<Note<'a>> {
        let (note, rest) = split(self.rest)?;
        self.rest = rest;
        Some(note)
    }
}

fn split(bytes: &[u8]) -> Option<(Note<'_>, &[u8])> {
    let name_size = usize::try_from(u32_at(bytes, 0)?).ok()?;
    let value_size = usize::try_from(u32_at(bytes, 4)?).ok()?;
    let kind = u32_at(bytes, 8)?;
    let name_end = 12usize.checked_add(name_size)?;
    let value_start = padded(name_end)?;
    let value_end = value_start.checked_add(value_size)?;
    let note = Note {
        name: bytes.get(12..name_end)?,
        kind,
        value: bytes.get(value_start..value_end)?,
    };
    // The last note's padding may be missing.
    let rest = bytes.get(padded(value_end)?..).unwrap_or(&[]);
    Some((note, rest))
}

/// The GNU build-id among `notes`: its raw bytes (20 for a SHA-1), or None
/// when there is none or it is empty or longer than a KBID frame carries.
pub fn gnu_build_id(bytes: &[u8]) -> Option<&[u8]> {
    notes(bytes)
        .find(|n| n.name == b"GNU\0" && n.kind == NT_GNU_BUILD_ID)
        .map(|n| n.value)
        .filter(|v| !v.is_empty() && v.len() <= BuildId::MAX)
}

/// `n` rounded up to a multiple of 4.
pub(crate) fn padded(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    /// A note: name, type, value, each padded as the ELF spec says.
    pub fn note(name: &[u8], kind: u32, value: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32).to_le_bytes());
        n.extend_from_slice(&(value.len() as u32).to_le_bytes());
        n.extend_from_slice(&kind.to_le_bytes());
        n.extend_from_slice(name);
        n.resize(padded(n.len()).unwrap(), 0);
        n.extend_from_slice(value);
        n.resize(padded(n.len()).unwrap(), 0);
        n
    }

    #[test]
    fn the_build_id_is_the_gnu_note_of_type_3_among_others() {
        let id: Vec<u8> = (1..=20).collect();
        let blob = [
            note(b"Xen\0", 18, &[1; 8]),
            note(b"Linux\0", 3, b"not this"),
            note(b"GNU\0", 3, &id),
            note(b"GNU\0", 3, b"not the second"),
        ]
        .concat();
        assert_eq!(gnu_build_id(&blob), Some(&id[..]));
        assert_eq!(notes(&blob).count(), 4);
    }

    #[test]
    fn none_when_missing_empty_too_long_or_cut() {
        assert_eq!(gnu_build_id(&note(b"GNU\0", 1, b"abi")), None);
        assert_eq!(gnu_build_id(&note(b"GNU\0", 3, b"")), None);
        assert_eq!(gnu_build_id(&note(b"GNU\0", 3, &[7; 65])), None);
        assert_eq!(
            gnu_build_id(&note(b"GNU\0", 3, &[7; 64])),
            Some(&[7u8; 64][..])
        );
        let whole = note(b"GNU\0", 3, &[9; 20]);
        for cut in 0..whole.len() {
            assert_eq!(gnu_build_id(&whole[..cut]), None, "{cut}");
        }
        // A size that overflows ends the walk, without a panic.
        let mut huge = note(b"GNU\0", 3, &[9; 4]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(gnu_build_id(&huge), None);
    }
}
