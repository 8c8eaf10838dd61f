//! One journal entry: a Markdown file with TOML front matter between `+++` lines.
//!
//! ```text
//! +++
//! id = "k3x9qa"
//! created = "2026-11-22T10:15:00Z"
//! updated = "2026-11-22T10:15:00Z"
//! tags = ["rust", "devlogd"]
//! +++
//!
//! # What I did today
//! ```
//!
//! Files live at `entries/YYYY/MM/YYYY-MM-DD-<id>.md`, so paths sort by date.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const FENCE: &str = "+++";
/// Characters of generated IDs: lowercase letters and digits without look-alikes (0/o, 1/l/i).
const ID_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
pub const GENERATED_ID_LEN: usize = 6;
pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontMatter {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub front: FrontMatter,
    pub body: String,
}

impl Entry {
    /// The file's text.
    pub fn render(&self) -> String {
        let front = toml::to_string(&self.front).unwrap_or_default();
        let body = self.body.trim_end_matches('\n');
        format!("{FENCE}\n{front}{FENCE}\n\n{body}\n")
    }

    /// Parse a file's text; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Entry, EntryError> {
        let rest = text
            .strip_prefix(FENCE)
            .and_then(|r| r.strip_prefix('\n').or_else(|| r.strip_prefix("\r\n")))
            .ok_or(EntryError::NoOpeningFence)?;
        let end = rest.find("\n+++").ok_or(EntryError::NoClosingFence)?;
        let front: FrontMatter = toml::from_str(&rest[..end])
            .map_err(|e| EntryError::FrontMatter(e.message().to_string()))?;
        let after = &rest[end + 4..];
        let body = after
            .strip_prefix('\n')
            .or_else(|| after.strip_prefix("\r\n"))
            .unwrap_or(after);
        let body = body.strip_prefix('\n').unwrap_or(body).to_string();
        Ok(Entry { front, body })
    }

    /// Relative path of the entry file: `entries/YYYY/MM/YYYY-MM-DD-<id>.md` (UTC date).
    pub fn rel_path(&self) -> String {
        let d = self.front.created.date();
        format!(
            "entries/{:04}/{:02}/{:04}-{:02}-{:02}-{}.md",
            d.year(),
            u8::from(d.month()),
            d.year(),
            u8::from(d.month()),
            d.day(),
            self.front.id
        )
    }

    /// The first non-empty body line without Markdown heading marks.
    pub fn title(&self) -> String {
        self.body
            .lines()
            .map(|l| l.trim().trim_start_matches('#').trim())
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string()
    }
}

/// The entry id encoded in a file name `YYYY-MM-DD-<id>.md`.
pub fn id_from_file_name(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".md")?;
    let (date, id) = (stem.get(..10)?, stem.get(11..)?);
    let looks_like_date = date.len() == 10
        && date.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    (looks_like_date && stem.as_bytes().get(10) == Some(&b'-') && !id.is_empty()).then_some(id)
}

/// What is wrong with an entry file's text.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("it does not start with a +++ front matter line")]
    NoOpeningFence,
    #[error("its front matter has no closing +++ line")]
    NoClosingFence,
    #[error("bad front matter: {0}")]
    FrontMatter(String),
}

/// What is wrong with a user-chosen ID.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("invalid id `{0}`: use 1 to {MAX_ID_LEN} characters")]
    Length(String),
    #[error("invalid id `{0}`: use only letters, digits, `-` and `_` (no `/`, `.` or spaces)")]
    Characters(String),
    #[error("invalid id `{0}`: it must not start with `-`")]
    LeadingDash(String),
}

/// Check a user-chosen ID: letters, digits, `-` and `_`, 1 to 64 characters, not starting
/// with `-` or `.` (no path separators, no `..`).
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(IdError::Length(id.to_string()));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(IdError::Characters(id.to_string()));
    }
    if id.starts_with('-') {
        return Err(IdError::LeadingDash(id.to_string()));
    }
    Ok(())
}

/// A fresh random ID (uniqueness is the caller's check).
pub fn generate_id() -> String {
    (0..GENERATED_ID_LEN)
        .map(|_| ID_ALPHABET[rand::random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

/// RFC 3339, second precision, UTC: how times are written everywhere in the journal.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Now, at second precision (what the front matter can hold).
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Now, at millisecond precision: a new entry's `created`, so entries made within one
/// second keep their order on every machine (a file's own time does not survive a restore
/// or a pull). Older entries' whole seconds still read.
pub fn created_now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let t = time::macros::datetime!(2026-11-22 10:15:00 UTC);
        Entry {
            front: FrontMatter {
                id: "k3x9qa".into(),
                created: t,
                updated: t,
                tags: vec!["rust".into(), "devlogd".into()],
            },
            body: "# Shipped the daemon\n\nIt works.\n".into(),
        }
    }

    #[test]
    fn render_and_parse_round_trip() {
        let e = entry();
        let text = e.render();
        assert!(text.starts_with("+++\nid = \"k3x9qa\"\n"), "{text}");
        assert!(
            text.contains("created = \"2026-11-22T10:15:00Z\""),
            "{text}"
        );
        assert_eq!(Entry::parse(&text).unwrap(), e);
        assert_eq!(e.rel_path(), "entries/2026/11/2026-11-22-k3x9qa.md");
        assert_eq!(e.title(), "Shipped the daemon");
    }

    #[test]
    fn broken_files_are_explained() {
        let problem = |text: &str| Entry::parse(text).unwrap_err().to_string();
        assert!(problem("no front matter").contains("+++"));
        assert!(problem("+++\nid = 1\n").contains("closing"));
        assert!(problem("+++\nid = 1\n+++\n").contains("bad front matter"));
    }

    #[test]
    fn ids_are_validated() {
        for good in ["a", "k3x9qa", "my-entry_2", &"x".repeat(64)] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../etc",
            "a/b",
            "a.b",
            "..",
            "-x",
            "with space",
            &"x".repeat(65),
            "é",
        ] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
        let id = generate_id();
        assert_eq!(id.len(), GENERATED_ID_LEN);
        assert!(validate_id(&id).is_ok());
    }

    #[test]
    fn ids_come_back_from_file_names() {
        assert_eq!(id_from_file_name("2026-11-22-k3x9qa.md"), Some("k3x9qa"));
        assert_eq!(id_from_file_name("2026-11-22-my-id.md"), Some("my-id"));
        assert_eq!(id_from_file_name("notes.md"), None);
        assert_eq!(id_from_file_name("2026-11-22-.md"), None);
        assert_eq!(id_from_file_name("2026-11-22-x.txt"), None);
    }
}
