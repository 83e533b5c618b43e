//! Replays the fuzz corpus seeds (fuzz/corpus/<target>/seed-*) and the kept
//! crash inputs (fuzz/regressions/<target>/*) through the properties.

use std::fs;
use std::path::Path;

/// Runs `run(target, input)` on every seed and regression of `targets`.
pub fn all(targets: &[&str], run: fn(&str, &[u8]) -> bool) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in targets {
        let seeds = inputs(&fuzz.join("corpus").join(target), Some("seed-"));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        for (name, data) in seeds
            .into_iter()
            .chain(inputs(&fuzz.join("regressions").join(target), None))
        {
            eprintln!("replaying {target}/{name}");
            assert!(run(target, &data), "no property for target {target}");
        }
    }
}

fn inputs(dir: &Path, prefix: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            prefix.is_none_or(|pre| name.starts_with(pre))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).expect("readable input"))
        })
        .collect();
    found.sort();
    found
}
