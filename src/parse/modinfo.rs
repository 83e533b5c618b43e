//! The `.modinfo` section of a kernel module: `key=value` records separated
//! by NUL bytes (runs of NULs pad records to alignment). The `depends=`
//! record names the modules that must be loaded first, comma-separated.

/// Iterator over the `(key, value)` records of a `.modinfo` section.
/// Empty records (padding) and records without `=` are passed over.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
}

/// The records of `section`, in order.
pub fn records(section: &[u8]) -> Records<'_> {
    Records { rest: section }
}

impl<'a> Iterator for Records<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (record, rest) = match self.rest.iter().position(|&b| b == 0) {
                Some(nul) => (&self.rest[..nul], &self.rest[nul + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if let Some(eq) = record.iter().position(|&b| b == b'=') {
                return Some((&record[..eq], &record[eq + 1..]));
            }
        }
        None
    }
}

/// The dependency names of every `depends=` record, in order. An empty
/// `depends=` (and empty items between commas) gives no names.
pub fn depends(section: &[u8]) -> impl Iterator<Item = &[u8]> {
    records(section)
        .filter(|(key, _)| *key == b"depends")
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(section: &[u8]) -> Vec<&[u8]> {
        depends(section).collect()
    }

    #[test]
    fn records_split_on_nul_and_first_equals() {
        let s = b"license=GPL\0\0\0description=a=b\0alias=x";
        let got: Vec<_> = records(s).collect();
        assert_eq!(
            got,
            vec![
                (&b"license"[..], &b"GPL"[..]),
                (&b"description"[..], &b"a=b"[..]),
                (&b"alias"[..], &b"x"[..]),
            ]
        );
    }

    #[test]
    fn records_without_equals_are_passed_over() {
        let got: Vec<_> = records(b"junk\0k=\0=v\0").collect();
        assert_eq!(got, vec![(&b"k"[..], &b""[..]), (&b""[..], &b"v"[..])]);
    }

    #[test]
    fn depends_lists_names_in_order() {
        let s = b"name=virtio_pci\0depends=virtio_ring,virtio_pci_modern_dev,virtio\0";
        assert_eq!(
            deps(s),
            vec![&b"virtio_ring"[..], b"virtio_pci_modern_dev", b"virtio"]
        );
    }

    #[test]
    fn empty_depends_gives_none() {
        assert!(deps(b"depends=\0name=virtio_ring\0").is_empty());
        assert!(deps(b"depends=,,\0").is_empty());
        assert!(deps(b"").is_empty());
        assert!(deps(b"\0\0\0").is_empty());
    }

    #[test]
    fn every_depends_record_counts_and_lookalikes_do_not() {
        let s = b"depends=a\0xdepends=b\0depends2=c\0depends=d,e";
        assert_eq!(deps(s), vec![&b"a"[..], b"d", b"e"]);
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let mut s = [0u8; 64];
        for seed in 0..512u32 {
            for (i, b) in s.iter_mut().enumerate() {
                *b = [0, b'=', b',', b'd', b'x'][(seed as usize * 7 + i * (seed as usize | 1)) % 5];
            }
            let _ = records(&s).count();
            let _ = depends(&s).count();
        }
    }
}
