//! The names of the history area: `.devlog-history/<path>/v-<etag>-<writer>` below the
//! remote's prefix, named after the version kept (its ETag), so keeping one version twice
//! (a retried delete) names one blob. Names of older releases,
//! `.devlog-history/<path>/<replaced-at>-<writer>`, stay readable; their stamp is a
//! writer's clock, shown but never trusted (history times come from the service). Pure
//! naming, shared by the remotes (which keep the area out of their listings) and by
//! [`crate::history`] (which reads versions from it).

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

/// Marks a leaf named after the version (older releases' leaves start with a digit).
const VERSION_LEAF: &str = "v-";

fn alphanumeric(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(max)
        .collect()
}

/// The history blob keeping the version of `path` whose ETag is `etag`, kept by `writer`:
/// the same name however often that version is kept.
pub fn version_name(path: &str, etag: &str, writer: &str) -> String {
    format!(
        "{HISTORY_DIR}/{path}/{VERSION_LEAF}{}-{}",
        alphanumeric(etag, 64),
        alphanumeric(writer, 32)
    )
}

/// A name as older releases gave it: the version of `path` replaced at `when` (by the
/// replacing writer's clock) by `writer`. Still read; written only by tests.
pub fn stamped_version_name(path: &str, when: OffsetDateTime, writer: &str) -> String {
    format!(
        "{HISTORY_DIR}/{path}/{}-{}",
        stamp(when),
        alphanumeric(writer, 32)
    )
}

/// A history blob name split into (path, the replaced-at stamp of an older release's
/// name, replaced by). `None` for a name that is not a version name, or whose path no
/// request may name ([`super::check_name`]: never a path devlogd writes, a planted name).
pub fn parse_version_name(name: &str) -> Option<(&str, Option<OffsetDateTime>, &str)> {
    let rest = name.strip_prefix(HISTORY_DIR)?.strip_prefix('/')?;
    let slash = rest.rfind('/')?;
    let (path, leaf) = (&rest[..slash], &rest[slash + 1..]);
    if super::check_name(path).is_err() {
        return None;
    }
    if let Some(version) = leaf.strip_prefix(VERSION_LEAF) {
        let (etag, by) = version.split_once('-')?;
        if etag.is_empty() {
            return None;
        }
        // The directory remote keeps the same bytes kept again later as `<name>.<n>`.
        let by = by.split('.').next().unwrap_or("");
        return Some((path, None, by));
    }
    if leaf.len() < STAMP_LEN {
        return None;
    }
    let when = parse_stamp(leaf.get(..STAMP_LEN)?)?;
    let by = leaf.get(STAMP_LEN..)?.trim_start_matches('-');
    Some((path, Some(when), by))
}

/// The original path of a history blob (for checking its writer mark), if it is one.
pub fn original_path(name: &str) -> Option<&str> {
    parse_version_name(name).map(|(p, _, _)| p)
}
