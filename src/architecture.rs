//! The module dependency rules of the crate documentation, checked.
//!
//! Every `crate::` path, and every `super::` path that climbs to the crate root, in the code
//! of each file under `src/` (comments, string literals and `#[cfg(test)]` items left out)
//! is an edge from the file's top-level module to another. Each edge must be listed in
//! [`ALLOWED`], and the listed graph must have no circle, so a new dependency is a decision
//! written down here, never an accident. And no source file grows past [`MAX_LINES`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module and the modules it may use. Read top to bottom: entry points and
/// listeners, then the ICI layer, the session, delivery, the switch, and the leaves.
const ALLOWED: &[(&str, &[&str])] = &[
    // The listeners and the operations around them wire the layers together.
    (
        "admin",
        &[
            "config", "listener", "logging", "metrics", "security", "server", "session", "soap",
            "switch",
        ],
    ),
    (
        "server",
        &[
            "config", "ici", "listener", "ops", "security", "session", "soap", "wsdl",
        ],
    ),
    // The active/standby pair: the lease, the standby's listeners, the fenced switch.
    (
        "cluster",
        &["config", "listener", "notify", "server", "switch"],
    ),
    ("listener", &["config", "metrics", "security", "tls"]),
    ("security", &["config"]),
    ("tls", &["config"]),
    ("reload", &["config", "logging"]),
    ("ops", &["logging", "metrics"]),
    ("trace_cmd", &["logging"]),
    ("wsdl", &["ici"]),
    // The ICI layer: catalog, typed requests, rendering of answers and events, faults.
    ("ici", &["domain", "notify", "session", "soap", "switch"]),
    // The session speaks typed ICI and the switch vocabulary; never soap or ici.
    (
        "session",
        &[
            "config", "domain", "logging", "metrics", "notify", "numbers", "switch",
        ],
    ),
    (
        "notify",
        &["backoff", "config", "logging", "metrics", "tls"],
    ),
    // The switch vocabulary and its backends: domain, their config, backoff.
    ("switch", SWITCH_BACKENDS_MAY_USE),
    ("config", &["domain", "numbers", "soap"]),
    ("logging", &["config"]),
    ("metrics", &["domain", "soap"]),
    ("numbers", &[]),
    ("domain", &[]),
    ("backoff", &[]),
    // The wire layer is pure: nothing of ours.
    ("soap", &[]),
    ("architecture", &[]),
];

/// What a switch backend may use besides the switch vocabulary (`switch/mod.rs` and the
/// files beside it).
const SWITCH_BACKENDS_MAY_USE: &[&str] = &["backoff", "config", "domain"];

/// The switch backends: directories under `src/switch/`, which may not use each other.
const SWITCH_BACKENDS: &[&str] = &["asterisk", "sim"];

/// One use of another module: `crate::<to>::<item>` in `file`, of top-level module `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: String,
    to: String,
    /// The path's next segment, if any (which backend a `crate::switch::` path names).
    item: Option<String>,
    file: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, relative to `src/`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules: `src/<name>.rs` and `src/<name>/`.
fn top_level_modules() -> BTreeSet<String> {
    std::fs::read_dir(src_dir())
        .expect("src/")
        .map(|e| e.expect("a directory entry").path())
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_string();
            let module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
            (module && name != "lib" && name != "main").then_some(name)
        })
        .collect()
}

/// Every edge of every library file (`lib.rs`, the root that ties all modules together,
/// and `main.rs`, another crate, left out).
fn edges() -> Vec<Edge> {
    let src = src_dir();
    let modules = top_level_modules();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&src).expect("under src/");
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts == ["lib.rs"] || parts == ["main.rs"] {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a readable source file");
        let from = parts[0].trim_end_matches(".rs").to_string();
        let file = parts.join("/");
        for path in uses(&source, module_depth(&parts)) {
            let Some(to) = path.first() else { continue };
            // A root item (none is used today) counts as the root, which uses everything.
            let to = if modules.contains(to) {
                to.clone()
            } else {
                "crate root".to_string()
            };
            if to != from {
                edges.push(Edge {
                    from: from.clone(),
                    to,
                    item: path.get(1).cloned(),
                    file: file.clone(),
                });
            }
        }
    }
    edges
}

/// How many `super::` lead from a file's module to the crate root: `src/a.rs` and
/// `src/a/mod.rs` are one below it, `src/a/b.rs` two.
fn module_depth(parts: &[String]) -> usize {
    match parts.last().map(String::as_str) {
        Some("mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

/// The paths (their first two segments) a file's code names from the crate root.
fn uses(source: &str, depth: usize) -> Vec<Vec<String>> {
    let code = without_test_items(&code_only(source));
    let chars: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let at_word = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':';
        if at_word && starts_with(&chars, i, "crate::") {
            i += "crate::".len();
            paths.extend(use_tree(&chars, &mut i));
        } else if at_word && starts_with(&chars, i, "super::") {
            let mut supers = 0;
            while starts_with(&chars, i, "super::") {
                supers += 1;
                i += "super::".len();
            }
            let found = use_tree(&chars, &mut i);
            if supers >= depth {
                paths.extend(found);
            }
        } else {
            i += 1;
        }
    }
    paths
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn starts_with(chars: &[char], at: usize, word: &str) -> bool {
    word.chars()
        .enumerate()
        .all(|(k, c)| chars.get(at + k) == Some(&c))
}

fn skip_space(chars: &[char], i: &mut usize) {
    while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
        *i += 1;
    }
}

/// Reads a path or a `use` tree (`a::b`, `a::{b, c::{d}}`, `*`) and returns its paths, each
/// cut to two segments.
fn use_tree(chars: &[char], i: &mut usize) -> Vec<Vec<String>> {
    skip_space(chars, i);
    match chars.get(*i) {
        Some('{') => {
            *i += 1;
            let mut all = Vec::new();
            loop {
                skip_space(chars, i);
                match chars.get(*i) {
                    None => return all,
                    Some('}') => {
                        *i += 1;
                        return all;
                    }
                    Some(',') => *i += 1,
                    Some(_) => {
                        let before = *i;
                        all.extend(use_tree(chars, i));
                        if *i == before {
                            *i += 1;
                        }
                    }
                }
            }
        }
        Some(c) if is_ident(*c) => {
            let start = *i;
            while chars.get(*i).is_some_and(|c| is_ident(*c)) {
                *i += 1;
            }
            let name: String = chars[start..*i].iter().collect();
            if !starts_with(chars, *i, "::") {
                return vec![vec![name]];
            }
            *i += 2;
            let rest = use_tree(chars, i);
            if rest.is_empty() {
                return vec![vec![name]];
            }
            rest.into_iter()
                .map(|mut path| {
                    path.insert(0, name.clone());
                    path.truncate(2);
                    path
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The source with comments and the insides of string and character literals blanked
/// (newlines kept), so only code is searched.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if starts_with(&chars, i, "/*") {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if starts_with(&chars, i, "*/") {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if (c == 'r' || c == 'b') && raw_string_start(&chars, i).is_some() {
            let (hashes, body) = raw_string_start(&chars, i).unwrap_or_default();
            for _ in i..body {
                out.push(' ');
            }
            i = body;
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !starts_with(&chars, i, &end) {
                out.push(blank(chars[i]));
                i += 1;
            }
            for _ in 0..end.len() {
                out.push(' ');
            }
            i += end.len();
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    out.push(blank(c));
                }
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\u{1F}'); a lifetime has no closing quote.
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// At a raw string (`r"`, `r#"`, `br"`): its number of `#` and where its body starts.
fn raw_string_start(chars: &[char], at: usize) -> Option<(usize, usize)> {
    if at > 0 && is_ident(chars[at - 1]) {
        return None;
    }
    let mut i = at;
    if chars[i] == 'b' {
        i += 1;
    }
    if chars.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    (chars.get(i) == Some(&'"')).then_some((hashes, i + 1))
}

/// The code without the items marked `#[cfg(test)]` (test modules, test-only imports):
/// tests may reach across layers to set a scene.
fn without_test_items(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        // The item ends at its first `;` or at the brace closing its first `{`.
        let end = match (item.find(';'), item.find('{')) {
            (Some(semi), Some(open)) if semi < open => semi + 1,
            (_, Some(open)) => matching_brace(item, open).map_or(item.len(), |close| close + 1),
            (Some(semi), None) => semi + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    ALLOWED.iter().copied().collect()
}

#[test]
fn every_module_has_its_rules_written_down() {
    let modules = top_level_modules();
    let listed: BTreeSet<String> = ALLOWED.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(
        listed, modules,
        "ALLOWED must list every top-level module of src/, and only those"
    );
    assert_eq!(listed.len(), ALLOWED.len(), "a module listed twice");
    for (module, uses) in ALLOWED {
        for used in *uses {
            assert!(
                listed.contains(*used),
                "{module} may use {used}: no such module"
            );
        }
    }
}

#[test]
fn every_use_is_an_allowed_edge() {
    let allowed = allowed();
    let refused: BTreeSet<String> = edges()
        .into_iter()
        .filter(|e| {
            !allowed
                .get(e.from.as_str())
                .is_some_and(|uses| uses.contains(&e.to.as_str()))
        })
        .map(|e| format!("{}: {} uses {}", e.file, e.from, e.to))
        .collect();
    assert!(
        refused.is_empty(),
        "uses not in the layer rules (src/architecture.rs, ALLOWED):\n{}",
        refused.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_allowed_edges_have_no_circle() {
    let allowed = allowed();
    // Depth-first search from every module; a module met again on the current path
    // closes a circle.
    fn visit<'a>(
        module: &'a str,
        allowed: &BTreeMap<&'a str, &'a [&'a str]>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module);
            panic!("import circle: {}", circle.join(" -> "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for used in allowed.get(module).copied().unwrap_or_default() {
            visit(used, allowed, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in allowed.keys() {
        visit(module, &allowed, &mut Vec::new(), &mut done);
    }
}

#[test]
fn soap_imports_nothing_of_ours() {
    let found: Vec<Edge> = edges().into_iter().filter(|e| e.from == "soap").collect();
    assert_eq!(found, [], "the wire layer must stay pure");
}

#[test]
fn session_imports_neither_soap_nor_ici() {
    let found: Vec<Edge> = edges()
        .into_iter()
        .filter(|e| e.from == "session" && (e.to == "soap" || e.to == "ici"))
        .collect();
    assert_eq!(found, [], "the session speaks typed ICI, never XML");
}

#[test]
fn switch_backends_import_only_the_switch_vocabulary_domain_config_and_backoff() {
    let backend_of = |file: &str| {
        SWITCH_BACKENDS
            .iter()
            .find(|b| file.starts_with(&format!("switch/{b}/")) || file == format!("switch/{b}.rs"))
            .copied()
    };
    let mut backend_files = 0;
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src.join("switch"), &mut files);
    for path in &files {
        let file = path
            .strip_prefix(&src)
            .expect("under src/")
            .to_string_lossy()
            .replace('\\', "/");
        if backend_of(&file).is_some() {
            backend_files += 1;
        }
    }
    assert!(
        backend_files > 0,
        "no switch backend found under src/switch/"
    );
    for edge in edges() {
        if backend_of(&edge.file).is_none() {
            continue;
        }
        assert!(
            SWITCH_BACKENDS_MAY_USE.contains(&edge.to.as_str()),
            "{}: a switch backend uses {}",
            edge.file,
            edge.to
        );
    }
    // Within `switch`, a backend never names another backend.
    for path in &files {
        let file = path
            .strip_prefix(&src)
            .expect("under src/")
            .to_string_lossy()
            .replace('\\', "/");
        let Some(backend) = backend_of(&file) else {
            continue;
        };
        let source = std::fs::read_to_string(path).expect("a readable source file");
        let parts: Vec<String> = file.split('/').map(str::to_string).collect();
        for used in uses(&source, module_depth(&parts)) {
            if used.first().map(String::as_str) == Some("switch")
                && let Some(other) = used.get(1)
            {
                assert!(
                    !SWITCH_BACKENDS.contains(&other.as_str()) || other == backend,
                    "{file}: the {backend} backend uses the {other} backend"
                );
            }
        }
    }
}

/// Files of one job each: past this, a file is doing several.
const MAX_LINES: usize = 800;

#[test]
fn no_source_file_is_over_800_lines() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "split by job:\n{}", long.join("\n"));
}

// The scanner itself: a rule checked by a scanner that misses uses would hold by accident.

#[test]
fn the_scanner_finds_paths_groups_and_climbing_supers() {
    let source = r#"
        use crate::soap::{self, Fault};
        use crate::{config::Config, domain::{UserId, Workmode}};
        fn f() { crate::metrics::install(); let _ = super::super::notify::Outbox::id; }
        use super::sibling::Thing;
    "#;
    let found = uses(source, 2);
    let firsts: BTreeSet<&str> = found.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(
        firsts,
        ["config", "domain", "metrics", "notify", "soap"].into()
    );
    assert!(found.contains(&vec!["domain".to_string(), "UserId".to_string()]));
    // One `super::` from a depth-2 file stays inside the top-level module.
    assert!(!firsts.contains("sibling"));
}

#[test]
fn the_scanner_skips_comments_strings_and_test_items() {
    let source = r##"
        // use crate::soap::Fault;
        /* crate::ici::catalog */
        /// [`crate::session::Operation`]
        const A: &str = "crate::ici::resolve";
        const B: &str = r#"crate::soap::" and "crate::ici"#;
        const C: char = '"';
        fn lifetime<'a>(x: &'a str) -> &'a str { crate::domain::check(x) }
        #[cfg(test)]
        mod tests {
            use crate::soap::parse_request;
            fn nested() { if true { crate::ici::resolve(); } }
        }
        #[cfg(test)]
        use crate::switch::Attributes;
        use crate::config::Config;
    "##;
    let firsts: BTreeSet<String> = uses(source, 1).into_iter().map(|p| p[0].clone()).collect();
    assert_eq!(firsts, ["config".to_string(), "domain".to_string()].into());
}
