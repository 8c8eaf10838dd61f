//! Conflicts a person can see: paths another writer changed too. Two sources: the state
//! index's conflict flag (the remote's version at the path is another writer's; ours went
//! to a conflict copy), and the conflict copies on the remote
//! (`notes.conflict-HOST-20261122T101500Z.md`, see [`crate::push::conflict_name`]), which
//! any machine sharing the prefix sees.

use crate::remote::RemoteBlob;
use serde::Serialize;
use std::collections::BTreeMap;

/// One path with a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub path: String,
    /// The remote's version at `path` is another writer's, and this machine's differs
    /// (the index's conflict flag).
    pub theirs_at_path: bool,
    /// The other writer's id on the blob at `path`, when it carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_at_path: Option<String>,
    /// When the blob at `path` was written (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_at_path: Option<String>,
    /// Conflict copies of `path` on the remote, oldest first.
    pub copies: Vec<ConflictCopy>,
}

/// A conflict copy: the version of the writer that lost the race for the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictCopy {
    /// Its blob name (below the prefix).
    pub name: String,
    /// The host that made it (the writer whose version it holds).
    pub host: String,
    /// When it was made (RFC 3339, from its name).
    pub when: String,
}

pub use crate::names::parse_copy_name;

/// The conflicts in a listing of the remote's current view and the index's flagged paths.
pub fn find(listing: &[RemoteBlob], flagged: &[String]) -> Vec<Conflict> {
    let mut by_path: BTreeMap<String, Conflict> = BTreeMap::new();
    let empty = |path: &str| Conflict {
        path: path.to_string(),
        theirs_at_path: false,
        writer_at_path: None,
        written_at_path: None,
        copies: Vec::new(),
    };
    for blob in listing {
        if let Some((path, host, when)) = parse_copy_name(&blob.name) {
            by_path
                .entry(path.clone())
                .or_insert_with(|| empty(&path))
                .copies
                .push(ConflictCopy {
                    name: blob.name.clone(),
                    host,
                    when,
                });
        }
    }
    for path in flagged {
        by_path
            .entry(path.clone())
            .or_insert_with(|| empty(path))
            .theirs_at_path = true;
    }
    for blob in listing {
        if let Some(c) = by_path.get_mut(&blob.name) {
            c.writer_at_path = blob.writer.clone();
            c.written_at_path = blob
                .written_ns
                .and_then(|ns| time::OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
                .and_then(|t| {
                    t.replace_nanosecond(0)
                        .ok()?
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
        }
    }
    let mut out: Vec<Conflict> = by_path.into_values().collect();
    for c in &mut out {
        c.copies
            .sort_by(|a, b| a.when.cmp(&b.when).then(a.name.cmp(&b.name)));
    }
    out
}

/// What resolves conflicts, for `verify`, `ctl status` and `conflicts` itself.
pub const RESOLVE_HINT: &str = "run `devlogd conflicts` to see them; keep your version with `devlogd push --on-conflict overwrite`, or fetch theirs with `devlogd conflicts --fetch`, merge by hand and push; delete a conflict copy from the remote once merged";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_names_are_read_back() {
        for (name, path, host) in [
            (
                "notes.conflict-laptop-20261122T101500Z.md",
                "notes.md",
                "laptop",
            ),
            (
                "events/20261122.conflict-my_host_local-20261122T101500Z.jsonl",
                "events/20261122.jsonl",
                "my_host_local",
            ),
            (
                "dir.d/README.conflict-h-20261122T101500Z",
                "dir.d/README",
                "h",
            ),
            ("d/n.conflict-h-20261122T101500Z-2.md", "d/n.md", "h"),
            ("n.conflict-web-01-20261122T101500Z-3.md", "n.md", "web-01"),
        ] {
            let (p, h, when) = parse_copy_name(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!((p.as_str(), h.as_str()), (path, host), "{name}");
            assert_eq!(when, "2026-11-22T10:15:00Z");
        }
        for name in [
            "notes.md",
            "notes.conflict-.md",
            "notes.conflict-h-2026.md",
            ".conflict-h-20261122T101500Z.md",
            "n.conflict-h-20261122T101500Z-x.md",
        ] {
            assert_eq!(parse_copy_name(name), None, "{name}");
        }
        let when = time::macros::datetime!(2026-11-22 10:15:00 UTC);
        let made = crate::push::conflict_name("a/b.c.md", "host-1", when, 2);
        assert_eq!(
            parse_copy_name(&made).map(|(p, h, _)| (p, h)),
            Some(("a/b.c.md".to_string(), "host-1".to_string()))
        );
    }

    #[test]
    fn flagged_paths_and_copies_are_joined() {
        let blob = |name: &str| RemoteBlob {
            name: name.into(),
            size: 1,
            md5: None,
            etag: "e".into(),
            writer: Some("w2".into()),
            host: None,
            written_ns: Some(1_795_000_000_000_000_000),
            service_ns: None,
            corrupt: false,
            sealed: None,
        };
        let listing = vec![
            blob("notes.md"),
            blob("notes.conflict-h-20261122T101500Z.md"),
            blob("other.conflict-h-20261121T101500Z.md"),
            blob("plain.md"),
        ];
        let found = find(&listing, &["notes.md".to_string()]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].path, "notes.md");
        assert!(found[0].theirs_at_path);
        assert_eq!(found[0].writer_at_path.as_deref(), Some("w2"));
        assert_eq!(
            found[0].written_at_path.as_deref(),
            Some("2026-11-18T11:06:40Z")
        );
        assert_eq!(found[0].copies.len(), 1);
        assert_eq!(found[1].path, "other.md");
        assert!(!found[1].theirs_at_path);
    }
}
