//! The code's layering, checked on its source: no import circle in any
//! folder of `src/` (a module's `super::`, `self::` and `crate::` paths
//! are its edges, `pub use` re-exports included; test modules are left
//! out, they may look anywhere), and the codec (`wire`, `proto`) names
//! nothing of the syscall layer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path inside its crate: `["run", "reactor"]`.
type ModPath = Vec<String>;

/// One crate's modules: each module's file and the paths its code names.
struct Crate {
    name: &'static str,
    modules: BTreeMap<ModPath, PathBuf>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module tree under `root` (a crate root's folder), found by file:
/// `x.rs` and `x/mod.rs` are module `x`; `skip` folders are other crates.
fn crate_of(name: &'static str, root: &Path, root_file: &str, skip: &[&str]) -> Crate {
    let mut modules = BTreeMap::new();
    modules.insert(Vec::new(), root.join(root_file));
    walk(root, &mut Vec::new(), skip, &mut modules);
    Crate { name, modules }
}

fn walk(dir: &Path, at: &mut ModPath, skip: &[&str], out: &mut BTreeMap<ModPath, PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if at.is_empty() && skip.contains(&name.as_str()) {
                continue;
            }
            at.push(name);
            if path.join("mod.rs").is_file() {
                out.insert(at.clone(), path.join("mod.rs"));
            }
            walk(&path, at, skip, out);
            at.pop();
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem == "mod" || (at.is_empty() && ["lib", "main"].contains(&stem)) {
                continue;
            }
            let mut module = at.clone();
            module.push(stem.to_owned());
            out.insert(module, path);
        }
    }
}

/// The source without comments, string literals and `#[cfg(test)]`
/// modules (inline ones run to the end of their braces).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal, not a lifetime: 'x' or '\n'.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let literal = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if literal {
                    let mut escaped = false;
                    for c in chars.by_ref() {
                        match (escaped, c) {
                            (false, '\\') => escaped = true,
                            (false, '\'') => break,
                            _ => escaped = false,
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    without_test_modules(&out)
}

fn without_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let unscoped = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|v| trimmed.strip_prefix(v))
            .unwrap_or(trimmed);
        if !unscoped.starts_with("mod ") {
            // A test-only item other than a module: keep looking after it.
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let Some(open) = after.find(['{', ';']) else {
            return out;
        };
        if after.as_bytes()[open] == b';' {
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths `code` names from `super::`, `self::` and `crate::`, and
/// from a child module's name (`child::x`, `use child::{..}`), each as its
/// segments (braced groups expanded one level), resolved from `at`.
fn named_paths(code: &str, at: &ModPath, children: &BTreeSet<String>) -> Vec<ModPath> {
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != ':';
        let rest: String = bytes[i..bytes.len().min(i + 8)].iter().collect();
        let start = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| rest.starts_with(p));
        if boundary && start.is_none() {
            let word: String = bytes[i..].iter().take_while(|&&c| is_ident(c)).collect();
            let after: String = bytes[i + word.len()..].iter().take(2).collect();
            if after == "::" && children.contains(&word) {
                for path in segments(&bytes, i) {
                    let mut full = at.clone();
                    full.extend(path);
                    found.push(full);
                }
            }
            i += word.len().max(1);
            continue;
        }
        let (Some(start), true) = (start, boundary) else {
            i += 1;
            continue;
        };
        // The module the path starts from: a file's module is `at`.
        let mut base: ModPath = match start {
            "crate::" => Vec::new(),
            _ => at.clone(),
        };
        let mut j = i;
        loop {
            let word: String = bytes[j..bytes.len().min(j + 7)].iter().collect();
            if word.starts_with("super::") {
                base.pop();
                j += 7;
            } else if word.starts_with("self::") {
                j += 6;
            } else if word.starts_with("crate::") {
                j += 7;
            } else {
                break;
            }
        }
        for path in segments(&bytes, j) {
            let mut full = base.clone();
            full.extend(path);
            found.push(full);
        }
        i = j.max(i + 1);
    }
    found
}

/// The segments of a path from `at` (`a::b::C`), or of each item of a
/// braced group there (`{a::B, c}`), one level deep.
fn segments(chars: &[char], at: usize) -> Vec<Vec<String>> {
    let mut j = at;
    let mut path = Vec::new();
    loop {
        let start = j;
        while j < chars.len() && is_ident(chars[j]) {
            j += 1;
        }
        if j > start {
            path.push(chars[start..j].iter().collect());
        }
        if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
            j += 2;
            continue;
        }
        break;
    }
    if chars.get(j) != Some(&'{') {
        return vec![path];
    }
    // A group: each comma-separated item's leading segments.
    let mut items = Vec::new();
    let mut depth = 0;
    let mut item_start = j + 1;
    for (k, &c) in chars.iter().enumerate().skip(j) {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                for tail in segments(chars, skip_space(chars, item_start)) {
                    let mut full = path.clone();
                    full.extend(tail);
                    items.push(full);
                }
                item_start = k + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    items
}

fn skip_space(chars: &[char], mut at: usize) -> usize {
    while chars.get(at).is_some_and(|c| c.is_whitespace()) {
        at += 1;
    }
    at
}

/// The module a path lands in: its longest prefix that is a module.
fn resolve<'a>(krate: &'a Crate, path: &[String]) -> Option<&'a ModPath> {
    (0..=path.len())
        .rev()
        .find_map(|n| krate.modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// Every edge of a crate: module to module, from the paths its code names.
fn edges(krate: &Crate) -> BTreeSet<(ModPath, ModPath)> {
    let mut edges = BTreeSet::new();
    for (module, file) in &krate.modules {
        let text = fs::read_to_string(file).unwrap();
        let children: BTreeSet<String> = krate
            .modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m[module.len()].clone())
            .collect();
        for path in named_paths(&code(&text), module, &children) {
            if let Some(target) = resolve(krate, &path) {
                if target != module {
                    edges.insert((module.clone(), target.clone()));
                }
            }
        }
    }
    edges
}

/// Each folder's circles: in folder D, the edge a -> b between D's own
/// module (its mod.rs) and its children, or among its children, that an
/// edge between modules inside them makes.
fn circles(krate: &Crate) -> Vec<String> {
    let edges = edges(krate);
    let mut problems = Vec::new();
    let folders: BTreeSet<&ModPath> = krate.modules.keys().collect();
    for folder in folders {
        let child = |m: &ModPath| -> Option<ModPath> {
            if !m.starts_with(folder) {
                return None;
            }
            Some(m[..(folder.len() + 1).min(m.len())].to_vec())
        };
        let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (from, to) in &edges {
            if let (Some(a), Some(b)) = (child(from), child(to)) {
                if a != b {
                    graph.entry(a).or_default().insert(b);
                }
            }
        }
        if let Some(circle) = find_circle(&graph) {
            let names: Vec<String> = circle
                .iter()
                .map(|m| match m.len() > folder.len() {
                    true => m.join("::"),
                    false => format!("{} (its mod.rs)", m.join("::")),
                })
                .collect();
            problems.push(format!(
                "{}: folder `{}`: {}",
                krate.name,
                folder.join("::"),
                names.join(" -> ")
            ));
        }
    }
    problems
}

fn find_circle(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    fn visit(
        node: &ModPath,
        graph: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        stack: &mut Vec<ModPath>,
        done: &mut BTreeSet<ModPath>,
    ) -> Option<Vec<ModPath>> {
        if let Some(at) = stack.iter().position(|m| m == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node.clone());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn crates() -> [Crate; 3] {
    let src = src();
    [
        crate_of("guestinit (lib)", &src, "lib.rs", &["bin"]),
        crate_of("init", &src.join("bin/init"), "main.rs", &[]),
        crate_of(
            "guestinit (host)",
            &src.join("bin/guestinit"),
            "main.rs",
            &[],
        ),
    ]
}

#[test]
fn no_folder_of_src_has_an_import_circle() {
    let problems: Vec<String> = crates().iter().flat_map(circles).collect();
    assert!(
        problems.is_empty(),
        "import circles:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_checker_sees_a_circle_through_super() {
    // Two siblings that name each other, one through a braced `use super::`.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("layering-fixture");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("run")).unwrap();
    fs::write(root.join("main.rs"), "mod run;\n").unwrap();
    fs::write(root.join("run/mod.rs"), "mod a;\nmod b;\n").unwrap();
    fs::write(root.join("run/a.rs"), "use super::{b::B, c};\n").unwrap();
    fs::write(
        root.join("run/b.rs"),
        "// super::a in a comment is no edge\nfn f() { crate::run::a::g() }\n",
    )
    .unwrap();
    let krate = crate_of("fixture", &root, "main.rs", &[]);
    let problems = circles(&krate);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("run::a -> run::b -> run::a"),
        "{problems:?}"
    );
    fs::write(root.join("run/b.rs"), "// super::a\nfn f() {}\n").unwrap();
    assert!(circles(&krate).is_empty());
    // A child naming its parent's own item, which re-exports the child.
    fs::write(root.join("run/a.rs"), "use super::Shared;\n").unwrap();
    fs::write(root.join("run/mod.rs"), "mod a;\nmod b;\npub use a::A;\n").unwrap();
    let problems = circles(&krate);
    let circle = problems.first().map(String::as_str).unwrap_or_default();
    assert!(
        circle.contains("run (its mod.rs) -> run::a -> run (its mod.rs)")
            || circle.contains("run::a -> run (its mod.rs) -> run::a"),
        "{problems:?}"
    );
}

#[test]
fn the_codec_names_nothing_of_the_syscall_layer() {
    let src = src();
    let mut files = vec![src.join("proto.rs")];
    files.extend(
        fs::read_dir(src.join("wire"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    let lib = &crates()[0];
    for file in files.iter().filter(|f| f.is_file()) {
        let text = code(&fs::read_to_string(file).unwrap());
        let module: ModPath = lib
            .modules
            .iter()
            .find(|(_, f)| *f == file)
            .map(|(m, _)| m.clone())
            .unwrap_or_default();
        for path in named_paths(&text, &module, &BTreeSet::new()) {
            assert!(
                path.first().map(String::as_str) != Some("sys"),
                "{} names {}",
                file.display(),
                path.join("::")
            );
        }
        assert!(!text.contains("sys::"), "{} names sys::", file.display());
    }
}
