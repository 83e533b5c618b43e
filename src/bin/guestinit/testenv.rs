//! The host tests' prerequisites (`cpio`, `xz`, `zstd`, the fetched kernel).
//! Under CI (`CI=true`) a missing one fails the test; on a developer's
//! machine the test says so and passes over it.

/// Reports that `what` is missing: a panic under CI, a note otherwise.
pub fn missing(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "{what} (run scripts/setup-tests.sh)");
    eprintln!("{what}: skipped (run scripts/setup-tests.sh)");
}
