#!/usr/bin/env bash
# The whole test suite on a fresh machine: formatting and clippy first (they
# fail in a minute, before the long VM tests), the tests' fixtures
# (scripts/setup-tests.sh, which runs scripts/setup.sh first), unit and
# property tests, the VM tests (which boot the real kernel and never skip),
# and a bounded fuzzing run of every target when the nightly toolchain is
# present.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "test: cargo fmt --check" >&2
cargo fmt --check
echo "test: cargo clippy --all-targets --release -- -D warnings" >&2
cargo clippy --all-targets --release -- -D warnings
scripts/setup-tests.sh
# The codec, the protocol and the parsers stand without the init's syscall
# layer (the `sys` feature), and the host tool needs none of it.
cargo test --release --lib --no-default-features
cargo check --bin guestinit --no-default-features
cargo build --release
# Two VMs at a time: one per core.
cargo test --release -- --test-threads=2
if cargo +nightly --version >/dev/null 2>&1; then
    scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
else
    echo "test: no nightly toolchain, fuzzing skipped (the property tests above ran)"
fi
