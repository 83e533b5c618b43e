//! The initramfs container: a cpio "newc" archive as the kernel unpacks it.
//! Headers come from the `cpio` crate (it writes mode, nlink and rdev, so
//! device nodes work); this wrapper fixes owner root, mtime 0 (reproducible
//! archives) and unique inode numbers. Names carry no leading `/`.

use std::io::{self, Write};

use cpio::newc::{trailer, Builder};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const S_IFLNK: u32 = 0o120000;

pub struct Archive<W: Write> {
    out: W,
    next_ino: u32,
}

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Archive<W> {
        Archive { out, next_ino: 1 }
    }

    fn header(&mut self, name: &str, mode: u32, nlink: u32) -> Builder {
        let ino = self.next_ino;
        self.next_ino += 1;
        Builder::new(name)
            .ino(ino)
            .mode(mode)
            .nlink(nlink)
            .uid(0)
            .gid(0)
            .mtime(0)
    }

    /// A directory, mode 0755.
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        let header = self.header(name, S_IFDIR | 0o755, 2);
        header.write(&mut self.out, 0).finish()?;
        Ok(())
    }

    /// A character device node with permission bits `perm`.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        let header = self
            .header(name, S_IFCHR | (perm & 0o7777), 1)
            .rdev_major(major)
            .rdev_minor(minor);
        header.write(&mut self.out, 0).finish()?;
        Ok(())
    }

    /// A regular file with permission bits `perm` and content `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is over 4 GiB, the newc size limit"),
            )
        })?;
        let header = self.header(name, S_IFREG | (perm & 0o7777), 1);
        let mut writer = header.write(&mut self.out, size);
        writer.write_all(data)?;
        writer.finish()?;
        Ok(())
    }

    /// A symbolic link to `target`; newc stores the target as the data.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let header = self.header(name, S_IFLNK | 0o777, 1);
        let mut writer = header.write(&mut self.out, target.len() as u32);
        writer.write_all(target.as_bytes())?;
        writer.finish()?;
        Ok(())
    }

    /// Writes the `TRAILER!!!` entry and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        trailer(&mut self.out)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// An independent newc reader for tests: checks the magic, the 4-byte
/// alignment of names and data, and that only padding follows the trailer.
#[cfg(test)]
pub mod read_back {
    #[derive(Debug, PartialEq, Eq)]
    pub struct Entry {
        pub name: String,
        pub ino: u32,
        pub mode: u32,
        pub nlink: u32,
        pub rdev: (u32, u32),
        pub data: Vec<u8>,
    }

    pub fn parse(archive: &[u8]) -> Vec<Entry> {
        let align = |n: usize| (n + 3) & !3;
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&archive[at..at + 6], b"070701", "magic at offset {at}");
            let field = |i: usize| {
                let hex = std::str::from_utf8(&archive[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(hex, 16).unwrap()
            };
            // uid, gid, mtime, the device of the file, and the check field.
            for i in [2, 3, 5, 7, 8, 12] {
                assert_eq!(field(i), 0, "header field {i} at offset {at}");
            }
            let size = field(6) as usize;
            let namesize = field(11) as usize;
            let name_at = at + 110;
            let data_at = align(name_at + namesize);
            assert_eq!(archive[name_at + namesize - 1], 0, "name is NUL-terminated");
            assert!(archive[name_at + namesize..data_at].iter().all(|&b| b == 0));
            let name =
                String::from_utf8(archive[name_at..name_at + namesize - 1].to_vec()).unwrap();
            let entry = Entry {
                name,
                ino: field(0),
                mode: field(1),
                nlink: field(4),
                rdev: (field(9), field(10)),
                data: archive[data_at..data_at + size].to_vec(),
            };
            let end = align(data_at + size);
            assert!(archive[data_at + size..end].iter().all(|&b| b == 0));
            if entry.name == "TRAILER!!!" {
                assert!(
                    archive[end..].iter().all(|&b| b == 0),
                    "bytes after the trailer"
                );
                return entries;
            }
            entries.push(entry);
            at = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_back::parse;
    use super::*;
    use std::process::{Command, Stdio};

    fn sample() -> Vec<u8> {
        let mut a = Archive::new(Vec::new());
        a.dir("dev").unwrap();
        a.char_device("dev/console", 0o600, 5, 1).unwrap();
        for len in 0..6 {
            a.file(&format!("f{len}"), 0o644, &vec![b'x'; len]).unwrap();
        }
        a.file("init", 0o755, b"\x7fELF").unwrap();
        a.finish().unwrap()
    }

    #[test]
    fn entries_read_back_with_their_headers() {
        let entries = parse(&sample());
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "f0",
                "f1",
                "f2",
                "f3",
                "f4",
                "f5",
                "init"
            ]
        );
        assert_eq!((entries[0].mode, entries[0].nlink), (0o040755, 2));
        assert_eq!(entries[1].mode, 0o020600);
        assert_eq!(entries[1].rdev, (5, 1));
        for (len, e) in entries[2..8].iter().enumerate() {
            assert_eq!(e.data, vec![b'x'; len]);
            assert_eq!(e.mode, 0o100644);
        }
        assert_eq!(entries[8].mode, 0o100755);
        let mut inos: Vec<_> = entries.iter().map(|e| e.ino).collect();
        inos.sort_unstable();
        inos.dedup();
        assert_eq!(inos.len(), entries.len(), "inode numbers are unique");
    }

    #[test]
    fn system_cpio_lists_the_same_entries() {
        let Ok(mut child) = Command::new("cpio")
            .args(["-itv", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            crate::testenv::missing("cpio is not installed");
            return;
        };
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<_> = listing.lines().collect();
        assert_eq!(lines.len(), 9, "{listing}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" dev"));
        assert!(lines[1].starts_with("crw-------"), "{}", lines[1]);
        assert!(lines[1].contains("5,") && lines[1].ends_with(" dev/console"));
        assert!(lines[8].starts_with("-rwxr-xr-x") && lines[8].ends_with(" init"));
    }
}
