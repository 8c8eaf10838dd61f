//! Version history on the remote: where replaced and deleted versions are kept, how their
//! names encode when they were replaced, and which version was current at a given time.
//!
//! Before devlogd replaces or removes a blob it copies the version being replaced,
//! server-side and conditioned on that version's ETag, to
//! `.devlog-history/<path>/v-<etag>-<writer>` below the same prefix (see
//! [`crate::remote::Remote::preserve`]). A copy keeps the original's metadata (Azure) or
//! mtime and writer mark (the directory remote's copy), so the time the version was written
//! and its writer mark travel with it; the name says which version it is and who replaced
//! it. The current view of the remote is every blob outside that area.
//!
//! Times come from the service, never from a writer: a version stopped being current when
//! the service stored its copy ([`RemoteBlob::service_ns`]); the write time a writer
//! recorded is only believed between the service times around it. Pruning measures ages
//! on the service's clock and refuses to run when this machine's clock disagrees with it.
//!
//! Pure logic (names, the "view as of T" choice, which versions a prune keeps) is
//! unit-tested here.

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
    /// When it stopped being current (RFC 3339): when the service stored its copy; `None`
    /// for the current version.
    pub replaced: Option<String>,
    #[serde(skip)]
    pub replaced_ns: Option<i128>,
    /// When the service stored the blob it is read from.
    #[serde(skip)]
    pub stored_ns: Option<i128>,
    /// The replaced-at stamp in an older release's history name: a writer's clock.
    #[serde(skip)]
    pub named_ns: Option<i128>,
    /// The writer id that wrote it, when its mark is intact.
    pub writer: Option<String>,
    /// The host name its writer stored with it (a claim, for people), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The writer id that replaced or deleted it.
    pub replaced_by: Option<String>,
    pub current: bool,
    /// The ETag of the blob it is read from.
    #[serde(skip)]
    pub etag: String,
    /// The listing already says its stored copy is damaged ([`RemoteBlob::corrupt`]).
    #[serde(skip)]
    pub corrupt: bool,
}

/// `2026-12-03T10:15:00Z`: a time to type after `restore --at`.
pub fn rfc3339_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
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
            stored_ns: blob.service_ns,
            named_ns: None,
            writer: blob.writer.clone(),
            host: blob.host.clone(),
            replaced_by: None,
            current: true,
            etag: blob.etag.clone(),
            corrupt: blob.corrupt,
        }
    }

    /// `None` for a blob in the history area whose name is not a version name. It was
    /// replaced when the service stored this copy; the stamp in an older release's name (a
    /// writer's clock) is shown only where the service gave no time, and never used.
    pub fn of_history(blob: &RemoteBlob) -> Option<Version> {
        let (path, stamp, by) = parse_version_name(&blob.name)?;
        let replaced_ns = blob.service_ns;
        let replaced = replaced_ns.and_then(rfc3339_ns).or_else(|| {
            stamp
                .and_then(|t| rfc3339_ns(t.unix_timestamp_nanos()))
                .map(|t| format!("{t} (by the replacing writer's clock)"))
        });
        Some(Version {
            path: path.to_string(),
            blob: blob.name.clone(),
            size: blob.size,
            md5: blob.md5.as_ref().map(crate::remote::hex),
            written: blob.written_ns.and_then(rfc3339_ns),
            written_ns: blob.written_ns,
            replaced,
            replaced_ns,
            stored_ns: blob.service_ns,
            named_ns: stamp.map(|t| t.unix_timestamp_nanos()),
            writer: blob.writer.clone(),
            host: blob.host.clone(),
            replaced_by: (!by.is_empty()).then(|| by.to_string()),
            current: false,
            etag: blob.etag.clone(),
            corrupt: blob.corrupt,
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
        // History by when the service stored each copy (then by write time, within a
        // second); the current version last.
        list.sort_by_key(|v| (v.current, v.stored_ns, v.written_ns));
        settle_times(list);
    }
    by_path
}

const SECOND_NS: i128 = 1_000_000_000;

/// How much later than `t` a moment the service recorded as `t` may be: a second for a
/// service that keeps whole seconds (Azure's Last-Modified), nothing for one that keeps
/// nanoseconds (a file's ctime).
fn grain(t: i128) -> i128 {
    if t % SECOND_NS == 0 { SECOND_NS } else { 0 }
}

/// A history copy the service stored after it stored the current blob. The version it
/// copies was current when copied, and the current blob has been current since the service
/// stored it: so this is the current version kept again (a replace that lost a race) or a
/// copy a co-writer planted. Either way it stands for no time before the current blob, and
/// no other version's times are taken from it.
fn kept_after_current(v: &Version, current_stored: Option<i128>) -> bool {
    !v.current && matches!((v.stored_ns, current_stored), (Some(s), Some(c)) if s > c)
}

/// Times from the service, refined by the writers' claims only within the service's grain.
/// A version was replaced when the service stored its copy; within that second, when the
/// version after it says it was written (or an older name's stamp says); with no claim, at
/// the end of the second. A version's write time is believed only between the time the
/// version before it was replaced and its own replacement; the current version's only
/// within the grain of when the service stored it (it cannot have been written later, nor
/// have been current before).
fn settle_times(list: &mut [Version]) {
    let current_stored = list.iter().find(|v| v.current).and_then(|v| v.stored_ns);
    for i in 0..list.len() {
        if list[i].current {
            continue;
        }
        let Some(stored) = list[i].stored_ns else {
            continue;
        };
        let claim = list[i + 1..]
            .iter()
            .find(|next| !kept_after_current(next, current_stored))
            .and_then(|next| next.written_ns)
            .or(list[i].named_ns);
        let latest = stored + grain(stored);
        let replaced = claim.map_or(latest, |c| c.clamp(stored, latest));
        list[i].replaced_ns = Some(replaced);
        list[i].replaced = rfc3339_ns(replaced);
    }
    let mut previous: Option<i128> = None;
    for v in list.iter_mut() {
        let (lower, upper) = match (v.current, v.stored_ns) {
            (true, Some(s)) => (Some(s), Some(s + grain(s))),
            (true, None) => (None, None),
            (false, _) => (None, v.replaced_ns),
        };
        let mut written = v.written_ns;
        if let (Some(w), Some(u)) = (written, upper) {
            written = Some(w.min(u));
        }
        for bound in [previous, lower].into_iter().flatten() {
            written = written.map(|w| w.max(bound));
        }
        if written != v.written_ns {
            v.written_ns = written;
            v.written = written.and_then(rfc3339_ns);
        }
        if !v.current && !kept_after_current(v, current_stored) {
            previous = v.replaced_ns.or(previous);
        }
    }
}

/// The version of each file that was current at `at` (unix ns): the current blob once it
/// was written (believed within the grain of when the service stored it; nothing replaced
/// after that can have been current at `at`); else the earliest version replaced after
/// `at` (a copy stored after the current blob stands for no time), or the current blob when
/// none was; in both cases only if it was already written at `at` (a version whose write
/// time is unknown counts as written).
pub fn view_at(current: &[RemoteBlob], history: &[RemoteBlob], at: i128) -> Vec<Version> {
    let mut out = Vec::new();
    for (_, list) in versions(current, history) {
        let current = list.iter().find(|v| v.current);
        let current_stored = current.and_then(|v| v.stored_ns);
        let since = current.and_then(|v| v.written_ns.or(v.stored_ns));
        let chosen = match current {
            Some(c) if since.is_some_and(|s| s <= at) => Some(c),
            _ => list
                .iter()
                .filter(|v| !v.current && !kept_after_current(v, current_stored))
                .find(|v| v.replaced_ns.is_some_and(|r| r > at))
                .or(current),
        };
        if let Some(v) = chosen
            && v.written_ns.is_none_or(|w| w <= at)
        {
            out.push(v.clone());
        }
    }
    out
}

/// When the oldest version of anything was written (unix ns), current or kept.
pub fn oldest_written(current: &[RemoteBlob], history: &[RemoteBlob]) -> Option<i128> {
    versions(current, history)
        .values()
        .flatten()
        .filter_map(|v| v.written_ns.or(v.stored_ns))
        .min()
}

/// Why a time for `--at` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    #[error(
        "cannot read the time {0:?}: give an RFC 3339 time (2026-11-29T09:05:00Z) or a date (2026-11-29)"
    )]
    Unreadable(String),
    #[error(transparent)]
    Range(#[from] time::error::ComponentRange),
    /// A bare date in the local time zone, which cannot be found.
    #[error(
        "cannot tell the local time zone for {0}; give a time with its offset (2026-11-29T23:59:59+01:00)"
    )]
    NoLocalZone(String),
}

/// A time for `--at`: RFC 3339 (`2026-11-29T09:05:00Z`), or a date (`2026-11-29`, the end
/// of that day in UTC, so "as of that day" includes its last version).
pub fn parse_at(text: &str) -> Result<OffsetDateTime, AtError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, &date_format) {
        let end = d.with_hms_nano(23, 59, 59, 999_999_999)?;
        return Ok(end.assume_utc());
    }
    Err(AtError::Unreadable(text.to_string()))
}

/// What a prune removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub keep_days: u32,
    /// Versions removed (`expired` + `thinned`).
    pub removed: u64,
    pub removed_bytes: u64,
    /// Removed for being older than `keep_days`.
    pub expired: u64,
    /// Removed by thinning: another version of the file stands for its hour or day.
    pub thinned: u64,
    pub kept: u64,
    pub failed: Vec<String>,
}

/// How far this machine's clock may be from the service's before a prune refuses to run.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

const HOUR_NS: i128 = 3_600 * 1_000_000_000;
const DAY_NS: i128 = 24 * HOUR_NS;

/// What a prune does with one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    /// Older than `keep_days`.
    Expired,
    /// Another version stands for its hour (when a day old or less) or its day.
    Thinned,
}

/// Syncthing's staggered versioning, for the versions of one file stored at `stored`
/// (unix ns, the service's times; `None`: unknown, kept): every version of the last hour,
/// the newest of each clock hour up to a day, the newest of each day up to `keep_days`,
/// none older. A file saved every second keeps about 24 + `keep_days` versions, not one per
/// save. Hours and days are UTC, so what stands for an hour stays the same from one prune
/// to the next.
pub fn thin(stored: &[Option<i128>], now: i128, keep_days: u32) -> Vec<Fate> {
    let max_age = i128::from(keep_days) * DAY_NS;
    let mut fates = vec![Fate::Keep; stored.len()];
    // The newest version seen in each bucket: (tier, bucket) -> index.
    let mut newest: std::collections::HashMap<(u8, i128), usize> = Default::default();
    for (i, t) in stored.iter().enumerate() {
        let Some(t) = *t else { continue };
        let age = now - t;
        if age < HOUR_NS {
            continue;
        }
        if age >= max_age {
            fates[i] = Fate::Expired;
            continue;
        }
        let bucket = if age < DAY_NS {
            (0, t.div_euclid(HOUR_NS))
        } else {
            (1, t.div_euclid(DAY_NS))
        };
        match newest.get(&bucket) {
            Some(&j) if stored[j] >= Some(t) => fates[i] = Fate::Thinned,
            Some(&j) => {
                fates[j] = Fate::Thinned;
                newest.insert(bucket, i);
            }
            None => {
                newest.insert(bucket, i);
            }
        }
    }
    fates
}

/// `None` when this machine's clock agrees with the service's (`service`); otherwise the
/// sentence that says by how much it does not.
pub fn clock_off(local: OffsetDateTime, service: OffsetDateTime) -> Option<String> {
    let off = local - service;
    (off.abs() > MAX_CLOCK_SKEW).then(|| crate::remote::clock_skew_message(off))
}

/// Remove history versions replaced more than `keep_days` before now, and thin the rest
/// ([`thin`]). "Now" and every age are the service's: a prune refuses to run when this
/// machine's clock (`now`) is more than [`MAX_CLOCK_SKEW`] from the service's, and it
/// never takes a version's age from its name or metadata (a writer's clock). Only version
/// names in the history area are ever deleted; current blobs are never touched.
pub async fn prune(
    remote: &dyn crate::remote::Remote,
    keep_days: u32,
    now: OffsetDateTime,
    retry: crate::remote::retry::RetryPolicy,
) -> Result<PruneReport, crate::remote::RemoteError> {
    use futures::StreamExt;
    let now = match retry.run(|| remote.service_now()).await? {
        Some(service) => {
            if let Some(off) = clock_off(now, service) {
                return Err(crate::remote::RemoteError::Permanent {
                    message: format!(
                        "{off}; pruning measures ages on the service's clock and stays off until they agree"
                    ),
                });
            }
            service
        }
        None => now,
    };
    let versions = retry.run(|| remote.list_history(None)).await?;
    let mut report = PruneReport {
        keep_days,
        ..Default::default()
    };
    // The versions of each file, by path; anything else in the area is kept.
    let mut by_path: BTreeMap<&str, Vec<&RemoteBlob>> = BTreeMap::new();
    for blob in &versions {
        match parse_version_name(&blob.name) {
            Some((path, _, _)) if crate::remote::check_name(&blob.name).is_ok() => {
                by_path.entry(path).or_default().push(blob)
            }
            _ => report.kept += 1,
        }
    }
    let mut doomed = Vec::new();
    for list in by_path.values() {
        let stored: Vec<Option<i128>> = list.iter().map(|b| b.service_ns).collect();
        for (blob, fate) in list
            .iter()
            .zip(thin(&stored, now.unix_timestamp_nanos(), keep_days))
        {
            match fate {
                Fate::Keep => report.kept += 1,
                _ => doomed.push(((*blob).clone(), fate)),
            }
        }
    }
    let mut deletes = futures::stream::iter(doomed)
        .map(|(blob, fate)| async move {
            // Exactly the version listed: one replaced since is another decision.
            let precondition = crate::remote::Precondition::IfMatch(blob.etag.clone());
            let result = retry.run(|| remote.delete(&blob.name, &precondition)).await;
            (blob, fate, result)
        })
        .buffer_unordered(8);
    while let Some((blob, fate, result)) = deletes.next().await {
        match result {
            Ok(()) => {
                report.removed += 1;
                report.removed_bytes = report.removed_bytes.saturating_add(blob.size);
                match fate {
                    Fate::Thinned => report.thinned += 1,
                    _ => report.expired += 1,
                }
            }
            Err(crate::remote::RemoteError::Conflict) => report.kept += 1,
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

    /// A blob the service stored at `stored`, whose writer claims it was written at `written`.
    fn blob(name: &str, written: Option<i128>, stored: i128, md5: u8) -> RemoteBlob {
        RemoteBlob {
            name: name.into(),
            size: 1,
            md5: Some([md5; 16]),
            etag: format!("e{md5}"),
            writer: None,
            host: None,
            written_ns: written,
            service_ns: Some(stored),
            corrupt: false,
            sealed: None,
        }
    }

    fn at(ns: i128) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap()
    }

    const S: i128 = 1_000_000_000;

    #[test]
    fn version_names_derive_from_the_version_and_old_names_stay_readable() {
        let name = version_name("notes/a b.md", "\"0x8DC1-2\"", "ab12-cd");
        assert_eq!(name, ".devlog-history/notes/a b.md/v-0x8DC12-ab12cd");
        assert_eq!(
            parse_version_name(&name),
            Some(("notes/a b.md", None, "ab12cd"))
        );
        // The directory remote keeps the same bytes kept again later next to the first.
        assert_eq!(
            parse_version_name(&format!("{name}.1764406000")),
            Some(("notes/a b.md", None, "ab12cd"))
        );
        let t = at(1_764_406_000_123_456_789);
        let old = stamped_version_name("notes/a b.md", t, "ab12-cd");
        assert_eq!(
            old,
            ".devlog-history/notes/a b.md/20251129T084640.123456789Z-ab12cd"
        );
        assert_eq!(
            parse_version_name(&old),
            Some(("notes/a b.md", Some(t), "ab12cd"))
        );
        assert!(is_history(&name));
        assert!(!is_history(".devlog-historyx/a"));
        assert_eq!(parse_version_name(".devlog-history/a/garbage"), None);
        assert_eq!(parse_version_name(".devlog-history/a/v--w"), None);
        // A planted name reaching out of the area is no version.
        for planted in [
            ".devlog-history/../../other/v-e1-w",
            ".devlog-history/a/../../x/20251129T084640.123456789Z-w",
            ".devlog-history//a/v-e1-w",
            ".devlog-history/./v-e1-w",
        ] {
            assert_eq!(parse_version_name(planted), None, "{planted}");
        }
    }

    #[test]
    fn the_view_at_a_time_is_the_version_current_then() {
        let v = |replaced: i128, written: i128, md5: u8| {
            blob(
                &version_name("a.md", &format!("e{md5}"), "w"),
                Some(written),
                replaced,
                md5,
            )
        };
        // Written at 10 s, replaced at 20 s by v2 (written 20 s), replaced at 30 s by v3.
        let history = vec![v(20 * S, 10 * S, 1), v(30 * S, 20 * S, 2)];
        let current = vec![blob("a.md", Some(30 * S), 30 * S, 3)];
        let md5_at = |t| {
            view_at(&current, &history, t)
                .first()
                .and_then(|v| v.md5.clone())
        };
        assert_eq!(md5_at(5 * S), None, "not written yet");
        assert_eq!(md5_at(10 * S), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(19 * S), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(25 * S), Some(crate::remote::hex(&[2; 16])));
        assert_eq!(md5_at(40 * S), Some(crate::remote::hex(&[3; 16])));
        // Deleted at 30 s: nothing current afterwards.
        let deleted = view_at(&[], &history, 40 * S);
        assert!(deleted.is_empty());
        assert_eq!(view_at(&[], &history, 25 * S).len(), 1);
    }

    #[test]
    fn times_come_from_the_service_not_from_names_or_metadata() {
        const DAY: i128 = 86_400 * S;
        let t0 = 1_800_000_000 * S;
        // v1 written at t0 and replaced at t0 + 100 s by a writer whose clock is 40 days
        // slow: its name's stamp and v2's metadata say t0 - 40 days.
        let slow = at(t0 + 100 * S - 40 * DAY);
        let history = vec![blob(
            &stamped_version_name("a.md", slow, "slow"),
            Some(t0),
            t0 + 100 * S,
            1,
        )];
        let current = vec![blob("a.md", Some(t0 + 100 * S - 40 * DAY), t0 + 100 * S, 2)];
        let md5_at = |t| {
            view_at(&current, &history, t)
                .first()
                .and_then(|v| v.md5.clone())
        };
        assert_eq!(md5_at(t0 + 50 * S), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(t0 + 200 * S), Some(crate::remote::hex(&[2; 16])));
        let list = versions(&current, &history).remove("a.md").unwrap();
        assert_eq!(list[0].replaced_ns, Some(t0 + 100 * S));
        assert!(list[1].written_ns >= Some(t0 + 99 * S), "{list:?}");
        // A writer 40 days fast: its write time is clamped to when the service stored it.
        let fast = vec![blob("b.md", Some(t0 + 40 * DAY), t0, 3)];
        let v = versions(&fast, &[]).remove("b.md").unwrap();
        assert_eq!(v[0].written_ns, Some(t0 + S));
        assert_eq!(view_at(&fast, &[], t0 + 2 * S).len(), 1);
    }

    #[test]
    fn within_a_whole_second_of_the_service_the_writers_account_orders_versions() {
        // Azure keeps whole seconds: v1 and v2 both replaced within second 100.
        let t = 100 * S;
        let history = vec![
            blob(
                &version_name("a.md", "e1", "w"),
                Some(t + 100_000_000),
                t,
                1,
            ),
            blob(
                &version_name("a.md", "e2", "w"),
                Some(t + 300_000_000),
                t,
                2,
            ),
        ];
        let current = vec![blob("a.md", Some(t + 500_000_000), t, 3)];
        let md5_at = |at| {
            view_at(&current, &history, at)
                .first()
                .and_then(|v| v.md5.clone())
        };
        assert_eq!(md5_at(t + 200_000_000), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(t + 400_000_000), Some(crate::remote::hex(&[2; 16])));
        assert_eq!(md5_at(t + 600_000_000), Some(crate::remote::hex(&[3; 16])));
        // Deleted within second 100 with no later version: present to its end.
        let deleted = vec![blob(&version_name("b.md", "e4", "w"), Some(t), t, 4)];
        assert_eq!(view_at(&[], &deleted, t + 900_000_000).len(), 1);
        assert!(view_at(&[], &deleted, t + S).is_empty());
    }

    #[test]
    fn a_current_blob_claiming_an_old_write_time_was_not_current_before_the_service_stored_it() {
        // Attack A: ours was replaced at 20 s (v1 kept); at 30 s a co-writer overwrites the
        // current blob without keeping a copy and claims it was written at 0.
        let history = vec![blob(
            &version_name("a.md", "e1", "w"),
            Some(10 * S),
            20 * S,
            1,
        )];
        let current = vec![blob("a.md", Some(0), 30 * S, 9)];
        let md5_at = |t| {
            view_at(&current, &history, t)
                .first()
                .and_then(|v| v.md5.clone())
        };
        assert_eq!(md5_at(15 * S), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(25 * S), None, "the version current at 25 s was lost");
        assert_eq!(md5_at(31 * S), Some(crate::remote::hex(&[9; 16])));
        let list = versions(&current, &history).remove("a.md").unwrap();
        assert_eq!(list[1].written_ns, Some(30 * S), "{list:?}");
        // A first version claiming 0 was not there before the service stored it.
        assert!(view_at(&current, &[], 10 * S).is_empty());
    }

    #[test]
    fn a_history_copy_planted_after_the_current_blob_stands_for_no_time() {
        // Attack B: ours was written and stored at 10 s and is still current; at 50 s a
        // co-writer plants a history copy claiming it was written at 0.
        let current = vec![blob("a.md", Some(10 * S), 10 * S, 1)];
        let planted = vec![blob(".devlog-history/a.md/v-x-y", Some(0), 50 * S, 9)];
        let md5_at = |t| {
            view_at(&current, &planted, t)
                .first()
                .and_then(|v| v.md5.clone())
        };
        assert_eq!(md5_at(20 * S), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(60 * S), Some(crate::remote::hex(&[1; 16])));
        assert_eq!(md5_at(5 * S), None, "not written yet");
        // Without the claim it does not hide ours either.
        let unclaimed = vec![blob(".devlog-history/a.md/v-x-y", None, 50 * S, 9)];
        let view = view_at(&current, &unclaimed, 20 * S);
        assert_eq!(view.first().map(|v| v.current), Some(true), "{view:?}");
        // Nor does it move an earlier replacement: v0 was current until 10 s.
        let history = [
            vec![blob(
                &version_name("a.md", "e0", "w"),
                Some(2 * S),
                10 * S,
                7,
            )],
            planted,
        ]
        .concat();
        assert_eq!(
            view_at(&current, &history, 5 * S)
                .first()
                .and_then(|v| v.md5.clone()),
            Some(crate::remote::hex(&[7; 16]))
        );
        let list = versions(&current, &history).remove("a.md").unwrap();
        assert_eq!(list[0].replaced_ns, Some(10 * S), "{list:?}");
        assert_eq!(list[2].written_ns, Some(10 * S), "{list:?}");
    }

    #[test]
    fn history_thins_like_staggered_versioning() {
        const H: i128 = 3_600 * S;
        const D: i128 = 24 * H;
        let now = 1_800_000_000 * S - 1_800_000_000 * S % D + 12 * H; // noon UTC
        use Fate::*;
        type Case = (&'static str, Vec<Option<i128>>, Vec<Fate>);
        let cases: Vec<Case> = vec![
            (
                "all of the last hour",
                vec![Some(now - 59 * 60 * S), Some(now - S), Some(now)],
                vec![Keep, Keep, Keep],
            ),
            (
                "the newest of each clock hour up to a day",
                vec![
                    Some(now - 2 * H - 10 * S),
                    Some(now - 2 * H - 20 * S),
                    Some(now - 3 * H - S),
                ],
                vec![Keep, Thinned, Keep],
            ),
            (
                "the newest of each day up to keep_days",
                vec![Some(now - 2 * D), Some(now - 2 * D - H), Some(now - 3 * D)],
                vec![Keep, Thinned, Keep],
            ),
            (
                "none older than keep_days",
                vec![Some(now - 30 * D), Some(now - 31 * D)],
                vec![Expired, Expired],
            ),
            ("an unknown time is kept", vec![None], vec![Keep]),
            (
                "order does not matter",
                vec![Some(now - 2 * H - 20 * S), Some(now - 2 * H - 10 * S)],
                vec![Thinned, Keep],
            ),
        ];
        for (what, stored, want) in cases {
            assert_eq!(thin(&stored, now, 30), want, "{what}");
        }
        // Any number of days is a bound, not a panic (older code subtracted it from a date).
        assert_eq!(thin(&[Some(now - 40 * D)], now, u32::MAX), vec![Keep]);
        // A file saved every 1.5 s for 20 minutes, pruned two hours later: one or two
        // versions (20 minutes can straddle a clock hour), not 800.
        let saves: Vec<Option<i128>> = (0..800)
            .map(|i| Some(now - 2 * H - i * 1_500_000_000))
            .collect();
        let kept = thin(&saves, now, 30).iter().filter(|f| **f == Keep).count();
        assert!((1..=2).contains(&kept), "{kept}");
        // The same, pruned within the hour: all kept.
        let kept = thin(&saves, now - H - 5 * 60 * S, 30)
            .iter()
            .filter(|f| **f == Keep)
            .count();
        assert!(kept > 100, "{kept}");
    }

    #[test]
    fn a_clock_far_from_the_services_is_named() {
        let service = at(1_800_000_000 * S);
        assert_eq!(
            clock_off(service + time::Duration::minutes(4), service),
            None
        );
        let off = clock_off(service + time::Duration::days(40), service).unwrap();
        assert!(
            off.contains("this machine's clock is 57600 minutes off the service's"),
            "{off}"
        );
        let off = clock_off(service - time::Duration::minutes(20), service).unwrap();
        assert!(
            off.contains("20 minutes off the service's (behind)"),
            "{off}"
        );
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
