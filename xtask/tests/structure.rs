//! The workspace's structure rules, checked on every `cargo test`:
//!
//! * no module cycles: within each crate, the modules that refer to each other (`use crate::…`,
//!   `super::…` paths) form no cycle among siblings (a parent using its children and children
//!   using their parent's items is structure, not a cycle);
//! * test support is not production code: only the end-to-end test crate may depend on
//!   `scanscope-testkit` outside `[dev-dependencies]`;
//! * ingestion does not build the analytics dependencies (cel, hickory-resolver, maxminddb,
//!   prefix-trie, indicatif).
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// The workspace members (from the root manifest's `members` list).
fn members() -> Vec<PathBuf> {
    let text = fs::read_to_string(root().join("Cargo.toml")).expect("root manifest");
    let start = text.find("members = [").expect("members list");
    let list = &text[start
        ..text[start..]
            .find(']')
            .map(|e| start + e)
            .expect("list end")];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(|m| root().join(m))
        .collect()
}

/// Removes comments and string literals, so paths in docs and messages do not count.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal like 'a' (lifetimes have no closing quote two bytes on).
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree (`crate::{a::{self, B}, c}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    fn go(prefix: &str, t: &str, out: &mut Vec<String>) {
        let t = t.trim();
        if let Some(open) = t.find('{') {
            let head = t[..open].trim().trim_end_matches("::");
            let inner = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
            let base = join(prefix, head);
            let mut depth = 0;
            let mut last = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        go(&base, &inner[last..i], out);
                        last = i + 1;
                    }
                    _ => {}
                }
            }
            go(&base, &inner[last..], out);
        } else if !t.is_empty() {
            let t = t.split(" as ").next().unwrap_or(t).trim();
            let t = t.strip_suffix("::self").unwrap_or(t);
            if t == "self" {
                out.push(prefix.to_string());
            } else {
                out.push(join(prefix, t));
            }
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}::{b}"),
        }
    }
    let mut out = Vec::new();
    go("", tree, &mut out);
    out
}

/// The paths a module's code refers to (from `use` items and inline `crate::`/`super::` paths).
fn referenced_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        out.extend(expand(&rest[..end]));
        rest = &rest[end..];
    }
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        if word.starts_with("crate::") || word.starts_with("super::") {
            out.push(word.trim_end_matches(':').to_string());
        }
    }
    out
}

/// Module path of a source file (`src/rollup/mod.rs` → `["rollup"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Sibling-level dependency edges of one crate: `parent → {(from child, to child)}`.
fn sibling_edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<(String, String)>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for f in &files {
        let from = module_of(src, f);
        let code = strip(&fs::read_to_string(f).expect("source"));
        for path in referenced_paths(&code) {
            let mut parts: Vec<&str> = path.split("::").collect();
            let mut target: Vec<String> = match parts.first() {
                Some(&"crate") => {
                    parts.remove(0);
                    Vec::new()
                }
                Some(&"super") => {
                    let mut t = from.clone();
                    while parts.first() == Some(&"super") {
                        parts.remove(0);
                        t.pop();
                    }
                    t
                }
                _ => continue,
            };
            // The deepest module the path names.
            for p in parts {
                target.push(p.to_string());
                if !modules.contains(&target) {
                    target.pop();
                    break;
                }
            }
            // Ancestors and descendants: structure, not a dependency between siblings.
            let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == target.len() {
                continue;
            }
            edges
                .entry(from[..common].to_vec())
                .or_default()
                .insert((from[common].clone(), target[common].clone()));
        }
    }
    edges
}

/// A cycle in a directed graph, if there is one.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    fn dfs<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut c: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
            c.push(n.to_string());
            return Some(c);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for m in next.get(n).into_iter().flatten() {
            if let Some(c) = dfs(m, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in next.keys() {
        if let Some(c) = dfs(n, &next, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_cycles() {
    let mut cycles = Vec::new();
    for m in members() {
        let src = m.join("src");
        if !src.is_dir() {
            continue;
        }
        for (parent, edges) in sibling_edges(&src) {
            if let Some(c) = find_cycle(&edges) {
                cycles.push(format!(
                    "{}: in `{}`: {}",
                    m.file_name().unwrap_or_default().to_string_lossy(),
                    if parent.is_empty() {
                        "crate".to_string()
                    } else {
                        parent.join("::")
                    },
                    c.join(" → ")
                ));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let dir = std::env::temp_dir().join(format!("scanscope-cycle-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("rollup")).unwrap();
    fs::write(src.join("lib.rs"), "pub mod rollup; pub mod rules;").unwrap();
    fs::write(src.join("rollup/mod.rs"), "pub mod config; pub mod write;").unwrap();
    fs::write(
        src.join("rollup/config.rs"),
        "use super::write::COLUMNS; // use crate::rules;\n",
    )
    .unwrap();
    fs::write(
        src.join("rollup/write.rs"),
        "use super::{config::{FieldRule, self}, Error};\nfn f() { crate::rules::x(); }",
    )
    .unwrap();
    fs::write(src.join("rules.rs"), "use crate::rollup::config::TagRule;").unwrap();
    let edges = sibling_edges(&src);
    fs::remove_dir_all(&dir).ok();
    let inner = &edges[&vec!["rollup".to_string()]];
    assert!(find_cycle(inner).is_some(), "{inner:?}");
    let top = &edges[&Vec::new()];
    assert!(find_cycle(top).is_some(), "rollup ↔ rules: {top:?}");
    assert_eq!(
        expand("crate::{a::{self, B as C}, d::e}"),
        ["crate::a", "crate::a::B", "crate::d::e"]
    );
}

#[test]
fn test_support_is_only_a_dev_dependency() {
    for m in members() {
        let name = m
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name == "tests" || name == "testkit" {
            continue;
        }
        let text = fs::read_to_string(m.join("Cargo.toml")).expect("manifest");
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.to_string();
            } else if line.starts_with("scanscope-testkit") {
                assert_eq!(
                    section, "[dev-dependencies]",
                    "{name} depends on scanscope-testkit in {section}"
                );
            }
        }
    }
}

#[test]
fn ingestion_builds_no_analytics_dependency() {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "scanscope-ingest",
            "--edges",
            "normal,build,dev",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains("tonic"), "not the ingest tree:\n{tree}");
    for banned in [
        "cel",
        "hickory-resolver",
        "maxminddb",
        "prefix-trie",
        "indicatif",
    ] {
        assert!(!crates.contains(banned), "scanscope-ingest builds {banned}");
    }
}
