//! Which paths under the root are synced: include/exclude globs, the built-in skips and
//! the root's `.devlogignore`.
//!
//! The same [`Filter`] answers for the full walk (`scan.rs`, which prunes directories with
//! [`Filter::skip_dir`]) and for single paths named by the watcher ([`Filter::accepts_path`]),
//! so a file is a candidate by exactly one rule set wherever it was seen.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::Path;

/// Name of the gitignore-style file at the root, merged with the configured rules.
pub const IGNORE_FILE: &str = ".devlogignore";

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("bad pattern `{pattern}` in {origin}: {message}")]
    Pattern {
        origin: String,
        pattern: String,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Filter {
    include: GlobSet,
    exclude: GlobSet,
    ignore_file: Option<Gitignore>,
}

impl Filter {
    /// Build from configured patterns plus `root/.devlogignore` when it exists.
    pub fn new(root: &Path, include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        let ignore_path = root.join(IGNORE_FILE);
        let ignore_file = if ignore_path.is_file() {
            let mut builder = GitignoreBuilder::new(root);
            if let Some(err) = builder.add(&ignore_path) {
                return Err(FilterError::Pattern {
                    origin: ignore_path.display().to_string(),
                    pattern: String::new(),
                    message: err.to_string(),
                });
            }
            let gi = builder.build().map_err(|e| FilterError::Pattern {
                origin: ignore_path.display().to_string(),
                pattern: String::new(),
                message: e.to_string(),
            })?;
            Some(gi)
        } else {
            None
        };
        Ok(Filter {
            include: glob_set("sync.include", include)?,
            exclude: glob_set("sync.exclude", exclude)?,
            ignore_file,
        })
    }

    /// Should the walk descend into directory `rel` (relative, `/`-separated)?
    pub fn skip_dir(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        is_hidden(name)
            || self.exclude.is_match(name)
            || self.exclude.is_match(rel)
            || self.ignored(rel, true)
    }

    /// Is file `rel` a candidate, given that its directories were already accepted?
    pub fn accepts_file(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        !is_hidden(name)
            && (self.include.is_match(name) || self.include.is_match(rel))
            && !self.exclude.is_match(name)
            && !self.exclude.is_match(rel)
            && !self.ignored(rel, false)
    }

    /// Is file `rel` a candidate, checking every directory above it too (for single paths).
    pub fn accepts_path(&self, rel: &str) -> bool {
        match rel.rfind('/') {
            Some(pos) => self.accepts_dir(&rel[..pos]) && self.accepts_file(rel),
            None => self.accepts_file(rel),
        }
    }

    /// Is directory `rel` walked, checking every directory above it too?
    pub fn accepts_dir(&self, rel: &str) -> bool {
        let mut end = 0;
        loop {
            let next = rel[end..].find('/').map(|p| end + p);
            let dir = &rel[..next.unwrap_or(rel.len())];
            if self.skip_dir(dir) {
                return false;
            }
            match next {
                Some(p) => end = p + 1,
                None => return true,
            }
        }
    }

    fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        self.ignore_file
            .as_ref()
            .is_some_and(|gi| gi.matched(rel, is_dir).is_ignore())
    }
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn glob_set(origin: &str, patterns: &[String]) -> Result<GlobSet, FilterError> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| FilterError::Pattern {
                origin: origin.to_string(),
                pattern: p.clone(),
                message: e.kind().to_string(),
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| FilterError::Pattern {
        origin: origin.to_string(),
        pattern: String::new(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_EXCLUDE, DEFAULT_INCLUDE};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn default_filter(root: &Path) -> Filter {
        Filter::new(root, &strings(DEFAULT_INCLUDE), &strings(DEFAULT_EXCLUDE)).unwrap()
    }

    #[test]
    fn default_rules_table() {
        let dir = tempfile::tempdir().unwrap();
        let f = default_filter(dir.path());
        let cases = [
            ("notes.md", true),
            ("2026/11/entry.md", true),
            ("events/20261122.jsonl", true),
            ("config.toml", true),
            ("image.png", false),
            ("notes.md.swp", false),
            (".notes.md.swp", false),
            ("notes.md~", false),
            ("4913", false),
            ("#notes.md#", false),
            (".hidden.md", false),
            (".git/config.toml", false),
            ("target/debug/x.md", false),
            ("a/node_modules/pkg/readme.md", false),
            ("sub/.obsidian/workspace.toml", false),
        ];
        for (path, want) in cases {
            assert_eq!(f.accepts_path(path), want, "{path}");
        }
    }

    #[test]
    fn configured_patterns_replace_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = Filter::new(
            dir.path(),
            &strings(&["*.txt", "docs/**/*.md"]),
            &strings(&["drafts", "*.tmp.txt"]),
        )
        .unwrap();
        assert!(f.accepts_path("a.txt"));
        assert!(f.accepts_path("docs/x/y.md"));
        assert!(!f.accepts_path("y.md"));
        assert!(!f.accepts_path("drafts/a.txt"));
        assert!(!f.accepts_path("b.tmp.txt"));
        // target is no longer excluded once exclude is configured; hidden stays skipped.
        assert!(f.accepts_path("target/a.txt"));
        assert!(!f.accepts_path(".a.txt"));
    }

    #[test]
    fn devlogignore_is_merged_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(IGNORE_FILE),
            "private/\n*.secret.md\n!keep.secret.md\n",
        )
        .unwrap();
        let f = default_filter(dir.path());
        assert!(!f.accepts_path("private/a.md"));
        assert!(!f.accepts_path("x/private/a.md"));
        assert!(!f.accepts_path("a.secret.md"));
        assert!(f.accepts_path("keep.secret.md"));
        assert!(f.accepts_path("public/a.md"));
        // The defaults still apply.
        assert!(!f.accepts_path("target/a.md"));
        assert!(!f.accepts_path("a.png"));
    }

    #[test]
    fn bad_pattern_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let e = Filter::new(dir.path(), &strings(&["a[b"]), &[]).unwrap_err();
        assert!(e.to_string().contains("a[b"), "{e}");
    }
}
