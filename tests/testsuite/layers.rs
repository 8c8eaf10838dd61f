//! The layers stay layers: reads `src/` and checks that no module imports one above it
//! (the order written in `src/lib.rs`), that the daemon, the pipeline and the remotes never
//! import the command-line layer, and that the top-level modules form no import circle.
//! Test code (`#[cfg(test)]` modules and `*tests.rs` files) is not counted.

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
            // Test modules sit at the end of a file; comments (doc links) are not imports.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let deps = graph.entry(module.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let dep: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !dep.is_empty() && dep != module {
                    deps.insert(dep);
                }
            }
        }
    }
    graph
}

/// `src/push/upload.rs` → `push`; `src/state.rs` → `state`; the crate roots → none.
fn top_module(src: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let module = first.trim_end_matches(".rs").to_string();
    (!matches!(module.as_str(), "lib" | "main")).then_some(module)
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
    // The docs list the layers bottom-up, one `//! N. a, b, c` line each.
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
    assert!(
        layer_of.len() > 10,
        "layers not found in lib.rs docs: {layer_of:?}"
    );
    for (module, deps) in graph() {
        let Some(&mine) = layer_of.get(&module) else {
            panic!("{module} is not placed in a layer in lib.rs");
        };
        for dep in deps {
            let Some(&theirs) = layer_of.get(&dep) else {
                panic!("{dep} (used by {module}) is not placed in a layer in lib.rs");
            };
            assert!(
                theirs < mine,
                "{module} (layer {mine}) imports {dep} (layer {theirs}): an arrow runs up"
            );
        }
    }
}
