//! Links the guest `init` binary fully static, with no C runtime and the
//! project's own linker script. The host binary links as usual.
fn main() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/linker/init.ld");
    println!("cargo:rerun-if-changed=linker/init.ld");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        // rust-lld (the default linker): folds identical functions, e.g.
        // generic instances that compile to the same code (-272 bytes).
        "-Wl,--icf=all",
        &format!("-Wl,-T,{script}"),
    ] {
        println!("cargo:rustc-link-arg-bin=init={arg}");
    }
}
