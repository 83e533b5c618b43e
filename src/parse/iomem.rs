//! Lines of `/proc/iomem`, as kernel/resource.c prints them:
//! `%*s%0*llx-%0*llx : %s`, indented two spaces per level of nesting. The
//! line is given without its `\n`.

use super::num::parse_hex_u64;

/// Where an x86_64 kernel is linked to load its `_text` physically
/// (`LOAD_PHYSICAL_ADDR`, CONFIG_PHYSICAL_START's default).
pub const LOAD_PHYSICAL_ADDR: u64 = 0x100_0000;

/// The name of the resource that starts at `_text`'s physical address.
pub const KERNEL_CODE: &[u8] = b"Kernel code";

/// One resource: an inclusive address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource<'a> {
    pub start: u64,
    pub end: u64,
    /// Nesting level: leading spaces / 2.
    pub depth: usize,
    /// The owner's name, as printed (may hold spaces, may be empty).
    pub name: &'a [u8],
}

/// Parses one line; `None` unless it has the kernel's shape with
/// `start <= end` and an even indent.
pub fn parse_line(line: &[u8]) -> Option<Resource<'_>> {
    let indent = line.iter().take_while(|&&b| b == b' ').count();
    if indent % 2 != 0 {
        return None;
    }
    let rest = &line[indent..];
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (start, rest) = (&rest[..dash], &rest[dash + 1..]);
    let colon = rest.windows(3).position(|w| w == b" : ")?;
    let (end, name) = (&rest[..colon], &rest[colon + 3..]);
    let (start, end) = (parse_hex_u64(start)?, parse_hex_u64(end)?);
    if start > end || name.contains(&b'\n') {
        return None;
    }
    Some(Resource {
        start,
        end,
        depth: indent / 2,
        name,
    })
}

/// KADR's `phys_base`, in the meaning ktstr's host applies to link-time
/// addresses (`pa = link_va - __START_KERNEL_map + phys_base`): how far the
/// kernel loaded from its link-time physical start. `None` unless `line` is
/// the "Kernel code" resource.
pub fn kernel_phys_base(line: &[u8]) -> Option<u64> {
    let r = parse_line(line).filter(|r| r.name == KERNEL_CODE)?;
    // Wrapping, as the kernel's own arithmetic: a load below the link-time
    // start "goes negative" and still translates correctly.
    Some(r.start.wrapping_sub(LOAD_PHYSICAL_ADDR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_resource() {
        assert_eq!(
            parse_line(b"  01000000-01e01a36 : Kernel code"),
            Some(Resource {
                start: 0x0100_0000,
                end: 0x01e0_1a36,
                depth: 1,
                name: b"Kernel code",
            })
        );
    }

    #[test]
    fn top_level_and_wide_addresses() {
        let r = parse_line(b"100000000-27fffffff : System RAM").unwrap();
        assert_eq!((r.start, r.end, r.depth), (0x1_0000_0000, 0x2_7fff_ffff, 0));
        // Hidden addresses (not root) print as zeros.
        let r = parse_line(b"    00000000-00000000 : PCI Bus 0000:00").unwrap();
        assert_eq!((r.depth, r.name), (2, &b"PCI Bus 0000:00"[..]));
        let r = parse_line(b"00000000-00000fff : ").unwrap();
        assert_eq!(r.name, b"");
    }

    #[test]
    fn phys_base_is_the_displacement_from_the_link_time_load_address() {
        // KASLR off: the kernel sits where it was linked.
        assert_eq!(
            kernel_phys_base(b"  01000000-01e01a36 : Kernel code"),
            Some(0)
        );
        // Physical KASLR moved it to 0x2a000000.
        let moved = kernel_phys_base(b"  2a000000-2ae01a36 : Kernel code");
        assert_eq!(moved, Some(0x2900_0000));
        assert_eq!(
            kernel_phys_base(b"  00200000-00e01a36 : Kernel code"),
            Some(0x20_0000u64.wrapping_sub(LOAD_PHYSICAL_ADDR))
        );
        assert_eq!(kernel_phys_base(b"  01000000-01e01a36 : Kernel data"), None);
        assert_eq!(kernel_phys_base(b"01000000 : Kernel code"), None);
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            &b""[..],
            b" 0-1 : odd indent",
            b"0-1: tight",
            b"0-1 :",
            b"0 - 1 : spaced",
            b"2-1 : backwards",
            b"-1 : no start",
            b"0- : no end",
            b"0-1x : stray",
            b"\t0-1 : tab",
            b"0-10000000000000000 : overflow",
            b"0-1 : a\nb",
        ] {
            assert_eq!(parse_line(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
