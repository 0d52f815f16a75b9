//! The module layering of `local/src` and `shared/src`: no import circle between top-level
//! modules. An edge `a -> b` is a reference to `crate::b` (or `super::b` reaching the crate
//! root) in a file of module `a`, outside comments, string literals and `#[cfg(test)]`
//! modules; the test fails on the first cycle it finds and prints it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules it references.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn local_modules_import_no_circle() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

#[test]
fn shared_modules_import_no_circle() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src"));
}

fn assert_acyclic(src: &Path) {
    let graph = module_graph(src);
    assert!(
        graph.len() > 3,
        "{}: too few modules read ({graph:?})",
        src.display()
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "{}: the module imports form a circle: {}",
            src.display(),
            cycle.join(" -> ")
        );
    }
}

/// The import graph between the top-level modules of the crate rooted at `src`.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let texts: BTreeMap<PathBuf, String> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("a readable source file");
            (f.strip_prefix(src).unwrap().to_path_buf(), strip(&text))
        })
        .collect();
    // Files that are `#[cfg(test)] mod x;` of their parent are test code as a whole.
    let mut test_files = BTreeSet::new();
    for (file, text) in &texts {
        for name in test_module_files(text) {
            let dir = module_path(file).join("/");
            let base = if dir.is_empty() {
                PathBuf::new()
            } else {
                PathBuf::from(dir)
            };
            test_files.insert(base.join(format!("{name}.rs")));
            test_files.insert(base.join(&name).join("mod.rs"));
        }
    }
    let modules: BTreeSet<String> = texts
        .keys()
        .filter_map(|f| module_path(f).first().cloned())
        .collect();
    let mut graph = Graph::new();
    for (file, text) in &texts {
        if test_files.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let path = module_path(file);
        let Some(own) = path.first() else {
            continue; // the crate root declares modules, it does not layer them
        };
        let edges = graph.entry(own.clone()).or_default();
        for target in references(&without_test_modules(text), &path) {
            if &target != own && modules.contains(&target) {
                edges.insert(target);
            }
        }
    }
    graph
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file relative to `src`: `sqs/engine/mod.rs` is `[sqs, engine]`,
/// `sqs/queue.rs` is `[sqs, queue]`, `lib.rs` and `main.rs` are `[]`.
fn module_path(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Vec::new();
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// The text without comments and with the contents of string and char literals blanked.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            // Anything else, lifetimes included.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Where `#[cfg(test)]` (and other attributes after it) precede `kw`, the index past them.
fn after_test_attribute(text: &str, at: usize) -> Option<usize> {
    let rest = text[at..].strip_prefix("#[cfg(test)]")?;
    let mut rest = rest.trim_start();
    while rest.starts_with("#[") {
        let close = rest.find(']')?;
        rest = rest[close + 1..].trim_start();
    }
    Some(text.len() - rest.len())
}

/// The names of `#[cfg(test)] mod name;` declarations.
fn test_module_files(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("#[cfg(test)]") {
        let Some(item) = after_test_attribute(text, at) else {
            continue;
        };
        let rest = &text[item..];
        let rest = rest.strip_prefix("pub ").unwrap_or(rest);
        if let Some(decl) = rest.strip_prefix("mod ") {
            let name: String = decl
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if decl[name.len()..].trim_start().starts_with(';') {
                names.push(name);
            }
        }
    }
    names
}

/// The text without `#[cfg(test)]` inline modules and `#[cfg(test)]` `use` declarations.
fn without_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("#[cfg(test)]") {
        let at = search + found;
        search = at + 1;
        if at < from {
            continue;
        }
        let Some(item) = after_test_attribute(text, at) else {
            continue;
        };
        let rest = &text[item..];
        let end = if rest.starts_with("mod ") || rest.starts_with("pub mod ") {
            match (rest.find('{'), rest.find(';')) {
                (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                    let mut depth = 0;
                    let mut end = rest.len();
                    for (k, ch) in rest[open..].char_indices() {
                        match ch {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = open + k + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    item + end
                }
                _ => continue,
            }
        } else if rest.starts_with("use ") || rest.starts_with("pub use ") {
            item + rest.find(';').map_or(rest.len(), |s| s + 1)
        } else {
            continue;
        };
        out.push_str(&text[from..at]);
        from = end;
        search = end;
    }
    out.push_str(&text[from..]);
    out
}

/// The top-level modules a file at module path `path` references: `crate::x`,
/// `use crate::{x, y::z}` and `super::x` where the `super`s reach the crate root.
fn references(text: &str, path: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in text.match_indices("crate::") {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue; // `nightshift_crate::` or `$crate::`-like paths
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level names of a group: skip nested groups.
            let mut depth = 0;
            let mut start = true;
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && depth == 0 && !c.is_whitespace() => {
                        found.insert(ident(&group[k..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    for (at, _) in text.match_indices("super::") {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue; // counted from the first `super::` of the path
        }
        let mut rest = &text[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        // The file's own module is `path`; `super` from it is its parent.
        if ups == path.len() {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

/// A cycle of `graph` as its nodes, the first repeated at the end; `None` if it has none.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).expect("on the stack");
                let mut cycle = stack[from..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn graph(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string());
        graph.entry(to.to_string()).or_default();
    }
    graph
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_only_a_cycle() {
    let dag = graph(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e")]);
    assert_eq!(find_cycle(&dag), None);
    let circle = graph(&[("a", "b"), ("b", "c"), ("c", "d"), ("c", "e"), ("e", "b")]);
    assert_eq!(
        find_cycle(&circle),
        Some(vec!["b".into(), "c".into(), "e".into(), "b".into()])
    );
    let self_loop = graph(&[("a", "a")]);
    assert_eq!(find_cycle(&self_loop), Some(vec!["a".into(), "a".into()]));
}

#[test]
fn references_skip_comments_strings_and_test_modules() {
    let text = strip(
        r#"//! Uses [`crate::doc`].
use crate::{alpha, beta::{Gamma, delta}, gamma::X};
use super::sibling::Item;
fn f() -> &'static str { let _ = crate::epsilon::run(); let c = '"'; "crate::string" }
/* crate::block */
#[cfg(test)]
mod tests {
    use crate::tested;
    fn g() { crate::tested::again(); }
}
#[cfg(test)]
use crate::test_only;
fn h() { crate::zeta::go() }
"#,
    );
    let found = references(&without_test_modules(&text), &["own".into()]);
    let want: BTreeSet<String> = ["alpha", "beta", "gamma", "epsilon", "sibling", "zeta"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, want);
    // From a nested file, `super::` stays inside the module.
    let nested = references("use super::sibling::Item;", &["own".into(), "child".into()]);
    assert!(nested.is_empty(), "{nested:?}");
    assert_eq!(test_module_files("#[cfg(test)]\nmod tests;"), vec!["tests"]);
}
