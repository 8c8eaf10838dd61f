//! The names of the history area: `.devlog-history/<path>/<replaced-at>-<writer>` below
//! the remote's prefix. Pure naming, shared by the remotes (which keep the area out of
//! their listings) and by [`crate::history`] (which reads versions from it).

use time::OffsetDateTime;

/// The history area's top-level name, below the remote's prefix. No local path maps into
/// it: [`crate::blobname::check`] refuses it.
pub const HISTORY_DIR: &str = ".devlog-history";

/// Length of a version stamp: `20261129T090539.123456789Z`.
const STAMP_LEN: usize = 26;

/// Whether a blob name lies in the history area.
pub fn is_history(name: &str) -> bool {
    name == HISTORY_DIR
        || name
            .strip_prefix(HISTORY_DIR)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `when` as a sortable UTC stamp with nanoseconds.
pub fn stamp(when: OffsetDateTime) -> String {
    let when = when.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z",
        when.year(),
        u8::from(when.month()),
        when.day(),
        when.hour(),
        when.minute(),
        when.second(),
        when.nanosecond()
    )
}

fn parse_stamp(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:9]Z"
    );
    time::PrimitiveDateTime::parse(s, &format)
        .ok()
        .map(|t| t.assume_utc())
}

/// The history blob for the version of `path` replaced at `when` by `writer`.
pub fn version_name(path: &str, when: OffsetDateTime, writer: &str) -> String {
    let writer: String = writer
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    format!("{HISTORY_DIR}/{path}/{}-{writer}", stamp(when))
}

/// A history blob name split into (path, replaced at, replaced by).
pub fn parse_version_name(name: &str) -> Option<(&str, OffsetDateTime, &str)> {
    let rest = name.strip_prefix(HISTORY_DIR)?.strip_prefix('/')?;
    let slash = rest.rfind('/')?;
    let (path, leaf) = (&rest[..slash], &rest[slash + 1..]);
    if path.is_empty() || leaf.len() < STAMP_LEN {
        return None;
    }
    let when = parse_stamp(leaf.get(..STAMP_LEN)?)?;
    let by = leaf.get(STAMP_LEN..)?.trim_start_matches('-');
    Some((path, when, by))
}

/// The original path of a history blob (for checking its writer mark), if it is one.
pub fn original_path(name: &str) -> Option<&str> {
    parse_version_name(name).map(|(p, _, _)| p)
}
