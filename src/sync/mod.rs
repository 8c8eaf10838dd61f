//! Two-way sync's pure core: what to do with one path, given the local file, the index row
//! both sides last agreed on (the base) and the remote listing. Nothing here touches a disk
//! or a network; the pull pass carries the actions out.

pub mod decide;

pub use decide::{Action, Facts, Kind, Local, Remote, decide};

impl Kind {
    /// What `rel`'s name says it is. `own_tag` is this machine's events tag
    /// (`journal::events::machine_tag()`).
    pub fn of(rel: &str, own_tag: &str) -> Kind {
        if let Some(of) = crate::names::conflict_original(rel) {
            return Kind::ConflictFile { of };
        }
        match events_tag(rel) {
            Some(tag) if tag == own_tag => Kind::OwnEvents,
            Some(_) => Kind::ForeignEvents,
            None => Kind::Plain,
        }
    }
}

/// `events/YYYYMMDD-TAG.jsonl` → `TAG`.
fn events_tag(rel: &str) -> Option<&str> {
    let name = rel.strip_prefix("events/")?.strip_suffix(".jsonl")?;
    let (date, tag) = name.split_at_checked(8)?;
    let tag = tag.strip_prefix('-')?;
    let ok = date.bytes().all(|b| b.is_ascii_digit()) && !tag.is_empty() && !tag.contains('/');
    ok.then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_names() {
        let me = "laptop-3f2a1b";
        for (rel, want) in [
            ("notes.md", Kind::Plain),
            ("events/20261122-laptop-3f2a1b.jsonl", Kind::OwnEvents),
            ("events/20261122-desk-00aa11.jsonl", Kind::ForeignEvents),
            ("events/2026112-laptop-3f2a1b.jsonl", Kind::Plain),
            ("events/sub/20261122-laptop-3f2a1b.jsonl", Kind::Plain),
            ("x/events/20261122-laptop-3f2a1b.jsonl", Kind::Plain),
            ("events/20261122-.jsonl", Kind::Plain),
            (
                "notes.sync-conflict-20261122-101500-desk.md",
                Kind::ConflictFile {
                    of: "notes.md".into(),
                },
            ),
            (
                "events/20261122-desk-00aa11.sync-conflict-20261122-101500-desk.jsonl",
                Kind::ConflictFile {
                    of: "events/20261122-desk-00aa11.jsonl".into(),
                },
            ),
            (
                "notes.conflict-desk-20261122T101500Z.md",
                Kind::ConflictFile {
                    of: "notes.md".into(),
                },
            ),
        ] {
            assert_eq!(Kind::of(rel, me), want, "{rel}");
        }
    }
}
