//! guestinit's PID 1: mounts the system, loads modules, runs the payload with
//! its output streamed as frames over the bulk virtio port, reports its exit
//! code and powers the VM off. `boot::run` holds the phase list.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

include!("tree.rs");
/// memcpy and its kin: with no libc, the binary brings its own.
#[allow(unsafe_code)]
mod memfuncs;
/// `_start`: from the kernel's initial stack to `boot::run`.
#[allow(unsafe_code)]
mod start;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crash::on_panic(info)
}
