//! The layers stay layers: reads `src/` and checks that no module imports one above it
//! (the order written in `src/lib.rs`), that the daemon, the pipeline and the remotes never
//! import the command-line layer, and that the top-level modules form no import circle.
//! Test code (each item behind a `#[cfg(test)]`, and `*tests.rs` files) is not counted;
//! everything else is, wherever it sits in the file. An import is any `crate::a` path, and each
//! first name of a `crate::{a, b::c}` group; comments and string literals are not code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code refers to through `crate::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            let Some(module) = top_module(&src, &path) else {
                continue;
            };
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let deps = graph.entry(module.clone()).or_default();
            deps.extend(imports(&text).into_iter().filter(|dep| *dep != module));
        }
    }
    graph
}

/// The top-level modules `text` (one source file) names after `crate::`, outside test items.
fn imports(text: &str) -> BTreeSet<String> {
    let code = without_test_items(&blank_comments_and_literals(text));
    let mut deps = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = code[i + "crate::".len()..].trim_start();
        match rest.strip_prefix('{') {
            Some(group) => {
                let inner = &group[..closing(group, '{', '}').unwrap_or(group.len())];
                for element in split_top_level(inner) {
                    deps.insert(ident_at(element.trim_start()));
                }
            }
            None => {
                deps.insert(ident_at(rest));
            }
        }
    }
    deps.retain(|d| !d.is_empty() && d != "self");
    deps
}

/// The identifier `s` starts with (empty if none).
fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The byte offset of the bracket that closes one already opened before `s` (nesting
/// counted), if any.
fn closing(s: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

/// `a, b::{c, d}, e` → `a`, `b::{c, d}`, `e`: commas inside nested groups do not split.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `text` with every comment and the inside of every string and character literal replaced
/// by spaces (newlines kept), so neither braces nor `crate::` in them count as code.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"…", r#"…"#; its end is a quote and as many hashes.
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push('"');
            i += 2 + hashes;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#') {
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
            out.push('"');
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            out.push('\'');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push('\'');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_')
}

/// `'x'` and `'\n'` are literals; `'a` in `&'a str` is a lifetime.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}

/// `code` (already blanked) without each item that follows a `#[cfg(test)]`: the attribute,
/// any further attributes, and the item up to its `;` or its closing brace.
fn without_test_items(code: &str) -> String {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let mut item = rest[at + ATTR.len()..].trim_start();
        while let Some(attr) = item.strip_prefix("#[") {
            let end = closing(attr, '[', ']').map_or(attr.len(), |e| e + 1);
            item = attr[end..].trim_start();
        }
        rest = &item[item_len(item)..];
    }
    out.push_str(rest);
    out
}

/// The length of the item `s` starts with: up to a `;` outside brackets, or to the brace that
/// closes its first top-level block.
fn item_len(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            ';' if depth == 0 => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// `src/push/upload.rs` → `push`; `src/state.rs` → `state`; the crate roots → none.
fn top_module(src: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let module = first.trim_end_matches(".rs").to_string();
    (!matches!(module.as_str(), "lib" | "main")).then_some(module)
}

/// The layers `src/lib.rs` lists bottom-up, one `//! N. a, b, c` line each: module → N.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut layer_of: BTreeMap<String, usize> = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.strip_prefix("//! ")) {
        let Some((n, names)) = line.split_once(". ") else {
            continue;
        };
        let Ok(n) = n.trim().parse::<usize>() else {
            continue;
        };
        for name in names.split(',') {
            let name = name.trim().trim_matches('`').trim_end_matches('.');
            if !name.is_empty() {
                layer_of.insert(name.to_string(), n);
            }
        }
    }
    layer_of
}

/// Every arrow of `graph` that does not run down `layer_of`, as a sentence.
fn arrows_up(
    graph: &BTreeMap<String, BTreeSet<String>>,
    layer_of: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (module, deps) in graph {
        let Some(&mine) = layer_of.get(module) else {
            wrong.push(format!("{module} is not placed in a layer in lib.rs"));
            continue;
        };
        for dep in deps {
            match layer_of.get(dep) {
                None => wrong.push(format!(
                    "{dep} (used by {module}) is not placed in a layer in lib.rs"
                )),
                Some(&theirs) if theirs >= mine => wrong.push(format!(
                    "{module} (layer {mine}) imports {dep} (layer {theirs}): an arrow runs up"
                )),
                Some(_) => {}
            }
        }
    }
    wrong
}

#[test]
fn nothing_below_the_front_ends_imports_them() {
    let g = graph();
    for (module, deps) in &g {
        if module != "commands" {
            assert!(
                !deps.contains("commands"),
                "{module} imports commands/ (the CLI layer): {deps:?}"
            );
        }
    }
    // The remotes are a leaf: they know files, secrets and nothing of the journal.
    let remote = &g["remote"];
    for allowed in remote {
        assert!(
            ["fsutil", "redact"].contains(&allowed.as_str()),
            "remote/ imports {allowed}"
        );
    }
}

#[test]
fn the_top_level_modules_form_no_import_circle() {
    let g = graph();
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(i) = path.iter().position(|n| *n == node) {
            panic!("import circle: {} → {node}", path[i..].join(" → "));
        }
        path.push(node);
        for dep in g.get(node).into_iter().flatten() {
            visit(dep, g, path, done);
        }
        path.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    for node in g.keys() {
        visit(node, &g, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_order_written_in_lib_rs_is_kept() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let layer_of = layers(&lib);
    assert!(
        layer_of.len() > 10,
        "layers not found in lib.rs docs: {layer_of:?}"
    );
    let wrong = arrows_up(&graph(), &layer_of);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The checker itself, over planted source: an upward import after a test module (where the
/// old checker stopped reading) and one inside a `use crate::{…}` group are both caught; what
/// sits in a test item, a comment or a string is not.
#[test]
fn the_checker_sees_past_test_items_and_into_use_groups() {
    let planted = r##"
use crate::fsutil::Beneath;
#[cfg(test)]
#[allow(dead_code)]
mod early_tests {
    use crate::commands::ctl; // skipped: test code
    fn f() -> &'static str { let _c = '}'; "}{ crate::ui" }
}
#[cfg(test)]
use crate::verify::run;
use crate::daemon::Daemon;
fn g() { let _s = r#"crate::session"#; } // crate::config in a comment
/* crate::machine { */
use crate::{redact, protocol::{Event, Status}, exit};
"##;
    let found = imports(planted);
    let expected = ["daemon", "exit", "fsutil", "protocol", "redact"];
    assert_eq!(found, expected.iter().map(|s| s.to_string()).collect());

    let graph = BTreeMap::from([("push".to_string(), found)]);
    let layer_of =
        layers("//! 1. exit, fsutil, redact\n//! 8. push\n//! 9. protocol\n//! 11. daemon, ui\n");
    let wrong = arrows_up(&graph, &layer_of);
    assert_eq!(
        wrong,
        [
            "push (layer 8) imports daemon (layer 11): an arrow runs up",
            "push (layer 8) imports protocol (layer 9): an arrow runs up",
        ],
        "the one after #[cfg(test)] and the one in the group"
    );
}
