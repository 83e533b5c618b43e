//! What kind of file a path is, in words, for the errors that refuse one
//! (`--disk` takes images, `--include` files and folders).

use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;

/// "a directory", "a FIFO", ...: what the user gave, as a noun phrase.
pub fn describe(kind: FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}
