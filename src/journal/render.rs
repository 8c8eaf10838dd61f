//! How `devlog` shows entries: the `list` table and `show --formatted`.

use super::entry::{Entry, timestamp};
use std::fmt::Write as _;

/// The width to wrap to: `$COLUMNS`, else 80.
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &usize| c >= 20)
        .unwrap_or(80)
}

fn date(e: &Entry) -> String {
    let t = e.front.created;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// `list`: id, date, tags, first line; newest first (the caller sorts).
/// One row: an entry, and for another version of one (a conflict file, a kept copy) its label.
pub type Row<'a> = (&'a Entry, Option<&'a str>);

pub fn table(rows: &[Row<'_>], width: usize) -> String {
    // An entry may have come down from the remote: a newline in its id or a tag (TOML
    // allows `\n` escapes) must not forge a row, so every cell is shown escaped.
    let shown = |s: &str| crate::redact::printable(s).into_owned();
    let entries: Vec<&Entry> = rows.iter().map(|(e, _)| *e).collect();
    // A conflict file is another version of an entry, not a second entry with its id.
    let ids: Vec<String> = rows
        .iter()
        .map(|(e, conflict)| match conflict {
            Some(label) => format!("{} ({})", shown(&e.front.id), shown(label)),
            None => shown(&e.front.id),
        })
        .collect();
    let id_w = ids
        .iter()
        .map(|id| id.chars().count())
        .max()
        .unwrap_or(2)
        .max(2);
    let tags: Vec<String> = entries
        .iter()
        .map(|e| shown(&e.front.tags.join(",")))
        .collect();
    let tag_w = tags
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 24);
    let mut out = format!(
        "{:<id_w$}  {:<16}  {:<tag_w$}  TITLE\n",
        "ID", "DATE (UTC)", "TAGS"
    );
    for ((e, id), t) in entries.iter().zip(&ids).zip(&tags) {
        let used = id_w + 2 + 16 + 2 + tag_w + 2;
        let title = truncate(&shown(&e.title()), width.saturating_sub(used).max(10));
        let _ = writeln!(
            out,
            "{:<id_w$}  {:<16}  {:<tag_w$}  {title}",
            id,
            date(e),
            truncate(t, tag_w)
        );
    }
    out
}

/// `show --formatted`: title, dates and tags, then the body wrapped to `width` (code
/// blocks and indented lines are left as they are).
pub fn formatted(e: &Entry, width: usize) -> String {
    let mut out = String::new();
    let title = e.title();
    let _ = writeln!(
        out,
        "{}",
        if title.is_empty() {
            "(untitled)"
        } else {
            &title
        }
    );
    let mut meta = format!("{} UTC", date(e));
    if e.front.updated != e.front.created {
        meta.push_str(&format!(" · updated {}", timestamp(e.front.updated)));
    }
    if !e.front.tags.is_empty() {
        let tags: Vec<String> = e.front.tags.iter().map(|t| format!("#{t}")).collect();
        meta.push_str(&format!(" · {}", tags.join(" ")));
    }
    let _ = writeln!(out, "{meta}  [{}]", e.front.id);
    let _ = writeln!(out, "{}", "─".repeat(width.min(60)));
    let mut in_code = false;
    let mut skipped_title = false;
    for line in e.body.lines() {
        if !skipped_title && !line.trim().is_empty() {
            skipped_title = true;
            if line.trim().trim_start_matches('#').trim() == title {
                continue;
            }
        }
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            let _ = writeln!(out, "{line}");
            continue;
        }
        if in_code || line.starts_with("    ") || line.starts_with('\t') {
            let _ = writeln!(out, "{line}");
            continue;
        }
        for wrapped in wrap(line, width) {
            let _ = writeln!(out, "{wrapped}");
        }
    }
    out.trim_end().to_string()
}

/// Greedy word wrap; a word longer than the width gets a line of its own.
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    if line.chars().count() <= width {
        return vec![line.to_string()];
    }
    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
    let mut lines = Vec::new();
    let mut current = indent.clone();
    for word in line.split_whitespace() {
        let fits = current.trim().is_empty()
            || current.chars().count() + 1 + word.chars().count() <= width;
        if !fits {
            lines.push(current.trim_end().to_string());
            current = indent.clone();
        }
        if !current.trim().is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current.trim_end().to_string());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_an_id_or_tag_from_the_remote_cannot_forge_a_row() {
        let text = "+++\nid = \"ab\\nFAKE\"\ncreated = \"2026-11-22T10:15:00Z\"\nupdated = \"2026-11-22T10:15:00Z\"\ntags = [\"a\\nFAKE ROW\"]\n+++\n\n# Title\u{202e}\n";
        let entry = Entry::parse(text).expect("a valid entry");
        let shown = table(&[(&entry, None)], 120);
        assert_eq!(shown.lines().count(), 2, "{shown}");
        assert!(!shown.contains('\u{202e}'), "{shown}");
        assert!(shown.contains("ab\\nFAKE"), "{shown}");
    }

    #[test]
    fn wraps_at_word_boundaries() {
        let w = wrap("the quick brown fox jumps over the lazy dog", 15);
        assert_eq!(w, vec!["the quick brown", "fox jumps over", "the lazy dog"]);
        assert!(w.iter().all(|l| l.chars().count() <= 15));
        assert_eq!(wrap("short", 15), vec!["short"]);
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            vec!["averyveryverylongword", "x"]
        );
    }
}
