//! The one mapping from a local relative path to a blob name.
//!
//! A local path `entries/2026/11/a.md` is stored as the blob `PREFIX/entries/2026/11/a.md`:
//! the name is the path itself, `/`-separated. That mapping is only safe while it is
//! one-to-one, and the blob service rewrites or rejects some names, so every path passes
//! [`check`] first; a path that the service would store under another name (or not at
//! all, or in a way that breaks listings) is refused for that file alone, with the rule it
//! breaks. It is never uploaded over another path's blob.
//!
//! The rules (Azure's naming rules for blobs; the directory remote follows the same ones,
//! so a journal can move between remotes):
//! - no `\`: the service stores it as `/`, so `a\b.md` would land on `a/b.md`;
//! - no component ending in `.`: the service drops trailing dots from URL path segments,
//!   so `notes.` would land on `notes`;
//! - no control characters (U+0000–U+001F, U+007F–U+009F) and no U+FFFE / U+FFFF: they
//!   cannot be written in the XML of a blob listing, so one such blob breaks listing the
//!   whole container;
//! - at most 1,024 characters and 254 `/`-separated components, prefix included;
//! - no empty, `.` or `..` components (a local path never has them).

/// The longest blob name the service accepts, in characters.
pub const MAX_NAME_CHARS: usize = 1024;
/// The most `/`-separated components a blob name may have.
pub const MAX_SEGMENTS: usize = 254;

/// Why a path cannot be stored as a blob of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnmappableName {
    #[error(
        "its name contains `\\`, which the blob service stores as `/` (it would overwrite another path's backup); rename it"
    )]
    Backslash,
    #[error(
        "a component of its name ends in `.`, which the blob service drops (it would land on another name); rename it"
    )]
    TrailingDot,
    #[error(
        "its name contains the control character U+{0:04X}, which blob listings cannot carry; rename it"
    )]
    ControlCharacter(u32),
    #[error(
        "its blob name would be {0} characters long, more than the service's limit of 1,024; shorten it"
    )]
    TooLong(usize),
    #[error(
        "its blob name would have {0} path components, more than the service's limit of 254; move it higher up"
    )]
    TooDeep(usize),
    #[error("its name has an empty, `.` or `..` component")]
    BadComponent,
    #[error("it is inside `.devlog-history/`, where the remote keeps replaced versions")]
    Reserved,
}

/// Check that `rel` (a `/`-separated relative path) can be stored as its own blob below
/// `prefix` (the remote's name prefix, `""` for none). The blob name is `rel` itself.
pub fn check(rel: &str, prefix: &str) -> Result<(), UnmappableName> {
    if crate::remote::history_name::is_history(rel) {
        return Err(UnmappableName::Reserved);
    }
    if rel.contains('\\') {
        return Err(UnmappableName::Backslash);
    }
    if let Some(c) = rel.chars().find(|&c| is_unlistable(c)) {
        return Err(UnmappableName::ControlCharacter(c as u32));
    }
    let mut segments = 0;
    for segment in rel.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(UnmappableName::BadComponent);
        }
        if segment.ends_with('.') {
            return Err(UnmappableName::TrailingDot);
        }
        segments += 1;
    }
    let (prefix_chars, prefix_segments) = if prefix.is_empty() {
        (0, 0)
    } else {
        (prefix.chars().count() + 1, prefix.split('/').count())
    };
    let chars = prefix_chars + rel.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(UnmappableName::TooLong(chars));
    }
    if prefix_segments + segments > MAX_SEGMENTS {
        return Err(UnmappableName::TooDeep(prefix_segments + segments));
    }
    Ok(())
}

/// Characters XML 1.0 cannot carry (or carries only as whitespace the service rewrites).
fn is_unlistable(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// The error for a path that cannot be backed up, naming the path and the rule.
pub fn refusal(rel: &str, why: &UnmappableName) -> String {
    format!("not backed up: {why}").replace(
        "its name",
        &format!("the name {}", crate::redact::printable(rel)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_local_path_maps_into_the_history_area() {
        assert!(matches!(
            check(".devlog-history/a.md/20261129T000000.000000000Z-w", ""),
            Err(UnmappableName::Reserved)
        ));
        assert!(check(".devlog-historyx/a.md", "").is_ok());
    }

    #[test]
    fn ordinary_names_map_to_themselves() {
        for ok in [
            "a.md",
            "entries/2026/11/2026-11-22-k3x9qa.md",
            "notes/ünïcödé ✓.md",
            "events/20261122.jsonl",
            ".hidden.toml",
            "a..b.md",
        ] {
            assert_eq!(check(ok, ""), Ok(()), "{ok}");
            assert_eq!(check(ok, "journal/laptop"), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_the_service_would_rewrite_or_cannot_list_are_refused() {
        assert_eq!(check("notes\\today.md", ""), Err(UnmappableName::Backslash));
        assert_eq!(check("notes.", ""), Err(UnmappableName::TrailingDot));
        assert_eq!(check("dir./a.md", ""), Err(UnmappableName::TrailingDot));
        assert_eq!(
            check("a\nAll files match.md", ""),
            Err(UnmappableName::ControlCharacter(0x0a))
        );
        assert_eq!(
            check("a\u{1b}]0;x.md", ""),
            Err(UnmappableName::ControlCharacter(0x1b))
        );
        assert_eq!(
            check("a\u{85}.md", ""),
            Err(UnmappableName::ControlCharacter(0x85))
        );
        assert_eq!(
            check("a\u{FFFF}.md", ""),
            Err(UnmappableName::ControlCharacter(0xFFFF))
        );
        assert_eq!(check("a//b.md", ""), Err(UnmappableName::BadComponent));
        assert_eq!(check("../b.md", ""), Err(UnmappableName::BadComponent));
    }

    #[test]
    fn limits_count_the_prefix() {
        let long = "x".repeat(1024);
        assert_eq!(check(&long, ""), Ok(()));
        assert_eq!(check(&long, "p"), Err(UnmappableName::TooLong(1026)));
        let deep = vec!["d"; 254].join("/");
        assert_eq!(check(&deep, ""), Ok(()));
        assert_eq!(check(&deep, "p"), Err(UnmappableName::TooDeep(255)));
        // Characters, not bytes.
        assert_eq!(check(&"é".repeat(1024), ""), Ok(()));
    }

    #[test]
    fn the_refusal_names_the_file_and_the_rule() {
        let why = check("notes\\today.md", "").unwrap_err();
        let text = refusal("notes\\today.md", &why);
        assert!(text.contains("notes\\today.md"), "{text}");
        assert!(text.contains("stores as `/`"), "{text}");
    }
}
