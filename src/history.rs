//! Version history on the remote: where replaced and deleted versions are kept, how their
//! names encode when they were replaced, and which version was current at a given time.
//!
//! Before devlogd replaces or removes a blob it copies the version being replaced,
//! server-side and conditioned on that version's ETag, to
//! `.devlog-history/<path>/<replaced-at>-<writer>` below the same prefix (see
//! [`crate::remote::Remote::preserve`]). A copy keeps the original's metadata (Azure) or
//! mtime and writer mark (the directory remote's copy), so the time the version was written and its
//! writer mark travel with it; the name says when it stopped being current and who
//! replaced it. The current view of the remote is every blob outside that area.
//!
//! Pure logic: names, parsing, and the "view as of T" choice, unit-tested here.

use crate::remote::RemoteBlob;
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub use crate::remote::history_name::*;

/// One version of one file: a history blob or the current blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    pub path: String,
    /// The blob to read it from.
    pub blob: String,
    pub size: u64,
    /// Hex MD5 (Content-MD5), when the remote has one.
    pub md5: Option<String>,
    /// When this version was written (RFC 3339), when known.
    pub written: Option<String>,
    #[serde(skip)]
    pub written_ns: Option<i128>,
    /// When it stopped being current (RFC 3339); `None` for the current version.
    pub replaced: Option<String>,
    #[serde(skip)]
    pub replaced_ns: Option<i128>,
    /// The writer id that wrote it, when its mark is intact.
    pub writer: Option<String>,
    /// The writer id that replaced or deleted it.
    pub replaced_by: Option<String>,
    pub current: bool,
    /// The ETag of the blob it is read from.
    #[serde(skip)]
    pub etag: String,
}

fn rfc3339_ns(ns: i128) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(ns)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

impl Version {
    pub fn of_current(blob: &RemoteBlob) -> Version {
        Version {
            path: blob.name.clone(),
            blob: blob.name.clone(),
            size: blob.size,
            md5: blob.md5.as_ref().map(crate::remote::hex),
            written: blob.written_ns.and_then(rfc3339_ns),
            written_ns: blob.written_ns,
            replaced: None,
            replaced_ns: None,
            writer: blob.writer.clone(),
            replaced_by: None,
            current: true,
            etag: blob.etag.clone(),
        }
    }

    /// `None` for a blob in the history area whose name is not a version name.
    pub fn of_history(blob: &RemoteBlob) -> Option<Version> {
        let (path, when, by) = parse_version_name(&blob.name)?;
        let replaced_ns = when.unix_timestamp_nanos();
        Some(Version {
            path: path.to_string(),
            blob: blob.name.clone(),
            size: blob.size,
            md5: blob.md5.as_ref().map(crate::remote::hex),
            written: blob.written_ns.and_then(rfc3339_ns),
            written_ns: blob.written_ns,
            replaced: rfc3339_ns(replaced_ns),
            replaced_ns: Some(replaced_ns),
            writer: blob.writer.clone(),
            replaced_by: (!by.is_empty()).then(|| by.to_string()),
            current: false,
            etag: blob.etag.clone(),
        })
    }
}

/// Every version of every file, oldest first per path.
pub fn versions(current: &[RemoteBlob], history: &[RemoteBlob]) -> BTreeMap<String, Vec<Version>> {
    let mut by_path: BTreeMap<String, Vec<Version>> = BTreeMap::new();
    for v in history.iter().filter_map(Version::of_history) {
        by_path.entry(v.path.clone()).or_default().push(v);
    }
    for b in current.iter().filter(|b| !is_history(&b.name)) {
        by_path
            .entry(b.name.clone())
            .or_default()
            .push(Version::of_current(b));
    }
    for list in by_path.values_mut() {
        // History by replacement time; the current version last.
        list.sort_by_key(|v| (v.current, v.replaced_ns));
    }
    by_path
}

/// The version of each file that was current at `at` (unix ns): the earliest version
/// replaced after `at`, or the current blob when none was; in both cases only if it was
/// already written at `at` (a version whose write time is unknown counts as written).
pub fn view_at(current: &[RemoteBlob], history: &[RemoteBlob], at: i128) -> Vec<Version> {
    let mut out = Vec::new();
    for (_, list) in versions(current, history) {
        let chosen = list
            .iter()
            .find(|v| v.replaced_ns.is_some_and(|r| r > at))
            .or_else(|| list.iter().find(|v| v.current));
        if let Some(v) = chosen
            && v.written_ns.is_none_or(|w| w <= at)
        {
            out.push(v.clone());
        }
    }
    out
}

/// A time for `--at`: RFC 3339 (`2026-11-29T09:05:00Z`), or a date (`2026-11-29`, the end
/// of that day in UTC, so "as of that day" includes its last version).
pub fn parse_at(text: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, &date_format) {
        let end = d
            .with_hms_nano(23, 59, 59, 999_999_999)
            .map_err(|e| e.to_string())?;
        return Ok(end.assume_utc());
    }
    Err(format!(
        "cannot read the time {text:?}: give an RFC 3339 time (2026-11-29T09:05:00Z) or a date (2026-11-29)"
    ))
}

/// What a prune removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub keep_days: u32,
    pub removed: u64,
    pub removed_bytes: u64,
    pub kept: u64,
    pub failed: Vec<String>,
}

/// Remove history versions replaced more than `keep_days` before `now`. Only names in
/// the history area are ever deleted; current blobs are never touched.
pub async fn prune(
    remote: &dyn crate::remote::Remote,
    keep_days: u32,
    now: OffsetDateTime,
    retry: crate::remote::retry::RetryPolicy,
) -> Result<PruneReport, crate::remote::RemoteError> {
    use futures::StreamExt;
    let cutoff = now - time::Duration::days(i64::from(keep_days));
    let versions = retry.run(|| remote.list_history(None)).await?;
    let mut report = PruneReport {
        keep_days,
        ..Default::default()
    };
    let mut old = Vec::new();
    for blob in versions {
        match parse_version_name(&blob.name) {
            Some((_, replaced, _)) if replaced < cutoff && is_history(&blob.name) => old.push(blob),
            _ => report.kept += 1,
        }
    }
    let mut deletes = futures::stream::iter(old)
        .map(|blob| async move {
            let result = retry
                .run(|| remote.delete(&blob.name, &crate::remote::Precondition::None))
                .await;
            (blob, result)
        })
        .buffer_unordered(8);
    while let Some((blob, result)) = deletes.next().await {
        match result {
            Ok(()) => {
                report.removed += 1;
                report.removed_bytes += blob.size;
            }
            Err(e) => report.failed.push(format!("{}: {e}", blob.name)),
        }
    }
    Ok(report)
}

/// The file in the state directory holding when history was last pruned (unix seconds).
const LAST_PRUNE_FILE: &str = "last-prune";

/// Prune if the last prune (recorded in `state_dir`) is a day old or more; the daemon calls
/// this after a successful full pass. Returns the report when it pruned.
pub async fn prune_if_due(
    remote: &dyn crate::remote::Remote,
    state_dir: &std::path::Path,
    keep_days: u32,
) -> Option<PruneReport> {
    let now = OffsetDateTime::now_utc();
    let stamp = state_dir.join(LAST_PRUNE_FILE);
    let last = std::fs::read_to_string(&stamp)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    if last.is_some_and(|l| now.unix_timestamp() - l < 86_400) {
        return None;
    }
    match prune(
        remote,
        keep_days,
        now,
        crate::remote::retry::RetryPolicy::default(),
    )
    .await
    {
        Ok(report) => {
            if let Err(e) = std::fs::write(&stamp, now.unix_timestamp().to_string()) {
                tracing::warn!(error = %e, "cannot record the prune time");
            }
            Some(report)
        }
        Err(e) => {
            tracing::warn!(error = %e, "pruning the history failed; tried again after the next full pass");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(name: &str, written: Option<i128>, md5: u8) -> RemoteBlob {
        RemoteBlob {
            name: name.into(),
            size: 1,
            md5: Some([md5; 16]),
            etag: format!("e{md5}"),
            writer: None,
            written_ns: written,
        }
    }

    fn at(ns: i128) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap()
    }

    #[test]
    fn version_names_round_trip_and_sort_by_time() {
        let t = at(1_764_406_000_123_456_789);
        let name = version_name("notes/a b.md", t, "ab12-cd");
        assert_eq!(
            name,
            ".devlog-history/notes/a b.md/20251129T084640.123456789Z-ab12cd"
        );
        let (path, when, by) = parse_version_name(&name).unwrap();
        assert_eq!((path, when, by), ("notes/a b.md", t, "ab12cd"));
        assert!(version_name("a", at(1), "w") < version_name("a", at(2), "w"));
        assert!(is_history(&name));
        assert!(!is_history(".devlog-historyx/a"));
        assert_eq!(parse_version_name(".devlog-history/a/garbage"), None);
    }

    #[test]
    fn the_view_at_a_time_is_the_version_current_then() {
        let v = |replaced: i128, written: i128, md5: u8| {
            blob(&version_name("a.md", at(replaced), "w"), Some(written), md5)
        };
        // Written at 10, replaced at 20 by v2 (written 20), replaced at 30 by v3 (current).
        let history = vec![v(20, 10, 1), v(30, 20, 2)];
        let current = vec![blob("a.md", Some(30), 3)];
        let md5_at = |t| {
            view_at(&current, &history, t)
                .first()
                .and_then(|v| v.md5.clone())
        };
        assert_eq!(md5_at(5), None, "not written yet");
        assert_eq!(md5_at(10), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(19), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(25), Some(crate::remote::hex(&[2; 16])));
        assert_eq!(md5_at(40), Some(crate::remote::hex(&[3; 16])));
        // Deleted at 30: nothing current afterwards.
        let deleted = view_at(&[], &history, 40);
        assert!(deleted.is_empty());
        assert_eq!(view_at(&[], &history, 25).len(), 1);
    }

    #[test]
    fn times_for_at() {
        assert!(parse_at("2026-11-29T09:05:00Z").is_ok());
        assert!(parse_at("2026-11-29T09:05:00.5+01:00").is_ok());
        let d = parse_at("2026-11-29").unwrap();
        assert_eq!((d.hour(), d.minute()), (23, 59));
        assert!(parse_at("yesterday").is_err());
    }
}
