//! Two-way sync's pull pass: bring the remote's changes down. One listing of the remote,
//! one scan of the journal and the index (the version both sides last agreed on) give
//! every path's three states; [`crate::sync::decide`] says what to do; this pass carries out
//! what comes *down* and leaves what goes up to the push that follows:
//!
//! - remote changed, local unchanged → the remote version is downloaded, checked against
//!   the listed size and MD5 and put in place only while the local file is still the one
//!   decided on ([`apply::fetch`]);
//! - both changed → the remote version is written beside the local file as
//!   `NAME.sync-conflict-YYYYMMDD-HHMMSS-HOST.EXT`, and the path's base becomes the remote
//!   version, so the push that follows puts the local file over it (the replaced version
//!   stays in the history, and the conflict file goes up too): every machine then has
//!   both;
//! - remote deleted, local unchanged → the local file is deleted once the remote history
//!   holds its content, within the mass-delete guard;
//! - a name a push would never upload (hidden, excluded, `.git/…`, not a safe path) never
//!   comes down.
//!
//! Returns the rows to record; the caller holds the index (one writer).

pub mod apply;

use crate::filter::Filter;
use crate::fsutil::Beneath;
use crate::history::Version;
use crate::remote::retry::RetryPolicy;
use crate::remote::{Remote, RemoteBlob, RemoteError};
use crate::restore::durable::Barrier;
use crate::scan::LocalFile;
use crate::state::{IndexEntry, Record, StateError, StateIndex};
use crate::state::{Origin, SyncInfo};
use crate::sync::{Action, Facts, Kind};
use apply::{Deleted, Fetched};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// What one pull works on.
pub struct PullContext<'a> {
    pub root: &'a Path,
    pub filter: &'a Filter,
    pub remote: &'a dyn Remote,
    pub state: &'a mut StateIndex,
    /// This machine's events tag (`journal::events::machine_tag()`): its own logs.
    pub own_tag: &'a str,
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub dry_run: bool,
    /// Carry out local deletes beyond the mass-delete guard.
    pub allow_deletes: bool,
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

/// What a pull did; `--json` prints it as is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PullReport {
    pub dry_run: bool,
    /// Paths looked at (remote, local and index together).
    pub paths: u64,
    /// Written from the remote (new, or over an unchanged local file).
    pub downloaded: Vec<String>,
    pub downloaded_bytes: u64,
    /// Deleted here because the remote deleted them.
    pub deleted: Vec<String>,
    /// Both sides changed: the remote version is now beside the local file.
    pub conflicts: Vec<PullConflict>,
    /// Files the next push uploads (or deletes): local changes, and after a conflict the
    /// local file and its conflict file.
    pub to_push: u64,
    /// Changed here (or on the remote) while the pull ran: left for the next pass.
    pub changed_meanwhile: Vec<String>,
    /// Local deletes held by the mass-delete guard.
    pub held_deletes: Vec<String>,
    /// Names a push would never upload: not written here.
    pub skipped: Vec<String>,
    /// A file on one side, a directory or link on the other: nothing moved.
    pub clashes: Vec<String>,
    /// Blobs whose bytes no longer match their MD5: never downloaded.
    pub damaged: Vec<String>,
    /// The sync-conflict files in the journal after this pass, waiting for the user.
    #[serde(default)]
    pub waiting: Vec<String>,
    pub failed: Vec<PullFailure>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullConflict {
    pub path: String,
    /// Where the remote's version was written.
    pub conflict_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullFailure {
    pub path: String,
    pub error: String,
}

impl PullReport {
    /// Add what the downloads of the same pass did.
    fn absorb(&mut self, fetched: PullReport) {
        self.downloaded.extend(fetched.downloaded);
        self.downloaded_bytes += fetched.downloaded_bytes;
        self.conflicts.extend(fetched.conflicts);
        self.to_push += fetched.to_push;
        self.changed_meanwhile.extend(fetched.changed_meanwhile);
        self.failed.extend(fetched.failed);
    }

    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.held_deletes.is_empty() && self.damaged.is_empty()
    }
}

/// Errors that stop a pull as a whole; what was placed stays, and recorded.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("cannot list {remote}: {error}")]
    List { remote: String, error: RemoteError },
    #[error("{0}")]
    Index(#[from] StateError),
    #[error("cannot read the journal: {0}")]
    Journal(String),
    #[error(
        "cannot reach {remote} ({message}); what came down is in place, run pull again to continue"
    )]
    Unreachable { remote: String, message: String },
}

/// One path's decision, with what it was decided on.
struct Decided {
    rel: String,
    action: Action,
    local: Option<LocalFile>,
    blob: Option<RemoteBlob>,
    /// A conflict: this path's conflict file already here, pushed and untouched since,
    /// which the new remote version replaces (one conflict file per path, however often
    /// the other side saves).
    reuse: Option<LocalFile>,
    /// A conflict with no conflict file here to reuse: the path's conflict file another
    /// machine already pushed (not here yet), which this conflict is written into instead of
    /// a second one beside it; the push that follows puts it over that blob (If-Match).
    reuse_blob: Option<RemoteBlob>,
}

pub async fn run(ctx: PullContext<'_>, opts: &PullOptions) -> Result<PullReport, PullError> {
    let started = Instant::now();
    let PullContext {
        root,
        filter,
        remote,
        state,
        own_tag,
    } = ctx;
    // The local side first: the listing's first blobs can then be decided as they come.
    let scan = crate::scan::scan_root(root, filter);
    if let Some(issue) = scan.issues.iter().find(|i| i.rel.is_empty()) {
        return Err(PullError::Journal(issue.message.clone()));
    }
    let local = LocalSide {
        // A path that could not be read (or lies below a directory that could not) is
        // neither replaced nor deleted this pass.
        unreadable: scan.issues.iter().map(|i| i.rel.clone()).collect(),
        files: scan.files.into_iter().map(|f| (f.rel.clone(), f)).collect(),
        rows: state.load()?,
        dest: Beneath::open(root).map_err(|e| PullError::Journal(e.to_string()))?,
    };
    let durable = Barrier::new(local.dest.fd()).map_err(|e| PullError::Journal(e.to_string()))?;
    let stamp = crate::restore::local_copy_stamp(time::OffsetDateTime::now_utc());
    // The decisions feed the downloads while the listing still comes in; the downloads'
    // outcomes are gathered beside them.
    let (to_fetch, fetch_queue) = futures::channel::mpsc::unbounded::<Decided>();
    let downloads = tokio::sync::Semaphore::new(opts.concurrency.max(1));
    // Local deletes in the mass-delete guard's window, before this pass.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let recent_deletes = state.local_deletes_since_window(now)?;
    let deciding = decide_all(
        remote,
        filter,
        own_tag,
        recent_deletes,
        &local,
        opts,
        to_fetch,
    );
    // `concurrency` downloads in flight; finished ones wait for their flush beside them
    // (as restore does), so a slow flush does not stall the downloads.
    let fetching = fetch_queue
        .map(|d| {
            fetch_one(
                remote,
                opts.retry,
                &downloads,
                &durable,
                &local.dest,
                d,
                &stamp,
            )
        })
        .buffer_unordered(opts.concurrency.max(1) + crate::restore::FLUSH_QUEUE);
    let (decided, fetched) = tokio::join!(deciding, gather(fetching));
    // What came down is recorded even when the pass stops: it is in place.
    if !fetched.records.is_empty() {
        #[cfg(target_os = "linux")]
        let _ = rustix::fs::syncfs(local.dest.fd());
        #[cfg(not(target_os = "linux"))]
        local.dest.sync();
        state.commit_synced(&fetched.records)?;
    }
    let mut decided = decided?;
    state.commit_synced(&decided.records)?;
    state.remove(&decided.forget)?;
    if !decided.deleted_now.is_empty() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        state.record_local_deletes(&decided.deleted_now, now)?;
    }
    let mut report = decided.report;
    report.absorb(fetched.report);
    if let Some(message) = fetched.unreachable {
        return Err(PullError::Unreachable {
            remote: remote.describe(),
            message,
        });
    }
    if opts.dry_run {
        for d in std::mem::take(&mut decided.dry_fetches) {
            match d.action {
                Action::Conflict => report.conflicts.push(PullConflict {
                    conflict_file: match (&d.reuse, &d.reuse_blob) {
                        (Some(f), _) => f.rel.clone(),
                        (None, Some(b)) => b.name.clone(),
                        (None, None) => conflict_file_for(&d).unwrap_or_default(),
                    },
                    path: d.rel,
                }),
                _ => report.downloaded.push(d.rel),
            }
        }
    }
    Ok(finish(report, started))
}

/// The journal and the index as the pass found them.
struct LocalSide {
    files: HashMap<String, LocalFile>,
    rows: HashMap<String, IndexEntry>,
    unreadable: Vec<String>,
    dest: Beneath,
}

impl LocalSide {
    /// `rel` could not be read, or lies below a directory that could not.
    fn unread(&self, rel: &str) -> bool {
        self.unreadable.iter().any(|u| {
            rel == u
                || rel
                    .strip_prefix(u.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// What the deciding half of a pass leaves to record, and its part of the report.
struct Decisions {
    records: Vec<(Record, SyncInfo)>,
    forget: Vec<String>,
    deleted_now: Vec<String>,
    /// A dry run's downloads and conflicts, reported, not fetched.
    dry_fetches: Vec<Decided>,
    report: PullReport,
}

/// List, decide every path and carry out what is local (records, deletes); what comes down
/// goes to `to_fetch`: a new blob as soon as its part of the listing is in, the rest once
/// the listing is whole.
async fn decide_all(
    remote: &dyn Remote,
    filter: &Filter,
    own_tag: &str,
    recent_deletes: u64,
    local: &LocalSide,
    opts: &PullOptions,
    to_fetch: futures::channel::mpsc::UnboundedSender<Decided>,
) -> Result<Decisions, PullError> {
    let mut report = PullReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let list_error = |error| PullError::List {
        remote: remote.describe(),
        error,
    };
    let prefix = remote.name_prefix();
    let dest = &local.dest;
    let (locals, rows) = (&local.files, &local.rows);
    let (early_tx, mut early_rx) = tokio::sync::mpsc::unbounded_channel();
    let listing = async move {
        if opts.dry_run {
            opts.retry.run(|| remote.list()).await
        } else {
            opts.retry.run(|| remote.list_sending(&early_tx)).await
        }
    };
    // Names already sent to the downloads, and the directories listed so far.
    let mut early: HashSet<String> = HashSet::new();
    let mut listed_dirs: HashSet<String> = HashSet::new();
    let early_decisions = async {
        while let Some(batch) = early_rx.recv().await {
            for blob in &batch {
                for (i, _) in blob.name.match_indices('/') {
                    listed_dirs.insert(blob.name[..i].to_string());
                }
            }
            let Some(last) = batch.last().map(|b| b.name.clone()) else {
                continue;
            };
            for blob in batch {
                if early.contains(&blob.name)
                    || !new_here(&blob.name, local, filter, &prefix)
                    // Every `NAME/…` sorts before `NAME0`: with the listing past it, a
                    // blob below NAME (a clash) would be among the names listed so far.
                    || format!("{}0", blob.name) > last
                    || listed_dirs.contains(&blob.name)
                {
                    continue;
                }
                let rel = blob.name.clone();
                let one = BTreeMap::from([(rel.clone(), blob)]);
                let d = decide_one(dest, &rel, locals, rows, &one, &listed_dirs, own_tag, None);
                if let Ok(d) = d
                    && d.action == Action::Download
                {
                    early.insert(rel);
                    let _ = to_fetch.unbounded_send(d);
                }
            }
        }
    };
    let (listing, ()) = tokio::join!(listing, early_decisions);
    let listing = listing.map_err(list_error)?;
    // Only names a push from here would upload come down; the rest is reported.
    let mut blobs: BTreeMap<String, RemoteBlob> = BTreeMap::new();
    let mut dirs: HashSet<String> = HashSet::new();
    for blob in listing {
        for (i, _) in blob.name.match_indices('/') {
            dirs.insert(blob.name[..i].to_string());
        }
        if crate::restore::safe(&blob.name)
            && crate::restore::would_push(filter, &blob.name, &prefix)
        {
            blobs.insert(blob.name.clone(), blob);
        } else {
            report.skipped.push(blob.name);
        }
    }
    let paths: BTreeSet<&String> = blobs
        .keys()
        .chain(locals.keys())
        .chain(rows.keys().filter(|rel| filter.accepts_path(rel)))
        .collect();
    report.paths = paths.len() as u64;
    let mut decided = Vec::new();
    let mut need_history = Vec::new();
    for rel in paths {
        if local.unread(rel) || early.contains(rel) {
            continue;
        }
        let d = decide_one(dest, rel, locals, rows, &blobs, &dirs, own_tag, None);
        match d {
            Ok(d) if d.action == Action::NeedHistory => need_history.push(rel.clone()),
            Ok(d) => decided.push(d),
            Err(error) => report.failed.push(PullFailure {
                path: rel.clone(),
                error,
            }),
        }
    }
    // Deletes and stale copies are decided against the history, listed once when needed.
    if !need_history.is_empty() {
        let history = opts
            .retry
            .run(|| remote.list_history(None))
            .await
            .map_err(list_error)?;
        let mut md5s: HashMap<String, HashSet<[u8; 16]>> = HashMap::new();
        for v in history.iter().filter_map(Version::of_history) {
            if let Some(md5) = v.md5.as_deref().and_then(crate::restore::unhex) {
                md5s.entry(v.path).or_default().insert(md5);
            }
        }
        let empty = HashSet::new();
        for rel in &need_history {
            let h = md5s.get(rel).unwrap_or(&empty);
            match decide_one(dest, rel, locals, rows, &blobs, &dirs, own_tag, Some(h)) {
                Ok(d) => decided.push(d),
                Err(error) => report.failed.push(PullFailure {
                    path: rel.clone(),
                    error,
                }),
            }
        }
    }
    hold_mass_deletes(
        recent_deletes,
        &mut decided,
        rows.len() as u64,
        opts,
        &mut report,
    );
    let mut claimed: HashSet<String> = HashSet::new();
    for d in decided.iter_mut().filter(|d| d.action == Action::Conflict) {
        d.reuse = reusable_conflict_file(dest, &d.rel, locals, rows);
        match &d.reuse {
            // Another machine wrote into it since it was recorded here (its own conflict on
            // this path): this version goes over theirs, as into a listed one, and theirs
            // stays in the history. Against the old ETag the push would be refused, and the
            // next conflict would start a second file.
            Some(here) => {
                let recorded = rows.get(&here.rel).and_then(|r| r.etag.as_deref());
                d.reuse_blob = blobs
                    .get(&here.rel)
                    .filter(|listed| recorded != Some(listed.etag.as_str()))
                    .cloned();
                claimed.insert(here.rel.clone());
            }
            None => d.reuse_blob = listed_conflict_file(&d.rel, &blobs, locals, rows, &claimed),
        }
        if let Some(blob) = &d.reuse_blob {
            claimed.insert(blob.name.clone());
        }
    }
    // A conflict file a conflict writes into is not also downloaded as it is.
    decided.retain(|d| !(d.action == Action::Download && claimed.contains(&d.rel)));
    let mut out = Decisions {
        records: Vec::new(),
        forget: Vec::new(),
        deleted_now: Vec::new(),
        dry_fetches: Vec::new(),
        report: PullReport::default(),
    };
    for d in decided {
        match d.action {
            Action::Nothing | Action::NeedHistory => {}
            Action::Record(entry) => out.records.push((
                Record { rel: d.rel, entry },
                SyncInfo {
                    writer: d.blob.as_ref().and_then(|b| b.writer.clone()),
                    origin: Origin::Adopted,
                    ..Default::default()
                },
            )),
            Action::Forget => out.forget.push(d.rel),
            Action::Push(_) | Action::PushDelete => report.to_push += 1,
            // The local file goes over the remote version: the push that follows does it
            // against that version (If-Match), which then stays in the history.
            Action::KeepLocal => {
                report.to_push += 1;
                if let Some(blob) = &d.blob {
                    out.records
                        .push(rebased(&d.rel, blob, blob.md5.unwrap_or_default()));
                }
            }
            Action::TypeClash => report.clashes.push(d.rel),
            Action::Damaged => report.damaged.push(d.rel),
            Action::DeleteLocal => {
                let Some(local) = d.local else { continue };
                if opts.dry_run {
                    report.deleted.push(d.rel);
                    continue;
                }
                match apply::delete(dest, &d.rel, &local) {
                    Ok(Deleted::Deleted) => {
                        out.deleted_now.push(d.rel.clone());
                        out.forget.push(d.rel.clone());
                        report.deleted.push(d.rel);
                    }
                    Ok(Deleted::Gone) => out.forget.push(d.rel),
                    Ok(Deleted::LocalChanged) => report.changed_meanwhile.push(d.rel),
                    Err(e) => report.failed.push(PullFailure {
                        path: d.rel,
                        error: format!("cannot delete: {e}"),
                    }),
                }
            }
            Action::Download | Action::KeepTheirs | Action::Conflict => {
                if opts.dry_run {
                    out.dry_fetches.push(d);
                } else {
                    let _ = to_fetch.unbounded_send(d);
                }
            }
        }
    }
    report.waiting = locals
        .keys()
        .filter(|rel| crate::names::parse_sync_conflict(rel).is_some())
        .filter(|rel| !report.deleted.contains(rel))
        .cloned()
        .collect();
    out.report = report;
    Ok(out)
}

/// A listed name that is new here: one a push would upload, no conflict file (a conflict
/// may claim it), no local file, no index row, nothing unreadable above it.
fn new_here(name: &str, local: &LocalSide, filter: &Filter, prefix: &str) -> bool {
    crate::restore::safe(name)
        && crate::restore::would_push(filter, name, prefix)
        && crate::names::parse_sync_conflict(name).is_none()
        && !local.files.contains_key(name)
        && !local.rows.contains_key(name)
        && !local.unread(name)
}

/// What the downloads of a pass brought: rows to record, their part of the report, and
/// the remote gone away mid-pass.
#[derive(Default)]
struct Gathered {
    records: Vec<(Record, SyncInfo)>,
    report: PullReport,
    unreachable: Option<String>,
}

async fn gather(
    mut outcomes: impl futures::Stream<Item = (Decided, Fetched, Option<String>)> + Unpin,
) -> Gathered {
    let mut out = Gathered::default();
    let (records, report) = (&mut out.records, &mut out.report);
    while let Some((d, fetched, conflict_file)) = outcomes.next().await {
        let Some(blob) = d.blob else { continue };
        tracing::debug!(path = %crate::redact::printable(&d.rel), action = ?d.action, conflict_file = ?conflict_file, outcome = ?fetched, "pull");
        match fetched {
            Fetched::Placed { meta, md5 } => {
                let info = SyncInfo {
                    writer: blob.writer.clone(),
                    origin: Origin::Pulled,
                    ..Default::default()
                };
                match conflict_file {
                    // The path's base becomes the remote version with no usable stat: the
                    // push that follows puts the local file over it (If-Match its ETag).
                    Some(file) => {
                        records.push(rebased(&d.rel, &blob, blob.md5.unwrap_or(md5)));
                        // Written into another machine's conflict file: its base is that
                        // blob, so the push puts this version over it (the old one to history).
                        if let Some(listed) = &d.reuse_blob {
                            records.push(rebased(
                                &listed.name,
                                listed,
                                listed.md5.unwrap_or_default(),
                            ));
                        }
                        report.downloaded_bytes += blob.size;
                        // The local file over the path, and the conflict file.
                        report.to_push += 2;
                        report.conflicts.push(PullConflict {
                            path: d.rel,
                            conflict_file: file,
                        });
                    }
                    None => {
                        let (size, mtime_ns) = crate::scan::stat_of(&meta);
                        records.push((
                            Record {
                                rel: d.rel.clone(),
                                entry: IndexEntry {
                                    size,
                                    mtime_ns,
                                    ctime_ns: crate::scan::ctime_of(&meta),
                                    md5,
                                    etag: Some(blob.etag.clone()),
                                    conflict: false,
                                    recorded_unix: 0,
                                },
                            },
                            info,
                        ));
                        report.downloaded_bytes += blob.size;
                        report.downloaded.push(d.rel);
                    }
                }
            }
            Fetched::LocalChanged | Fetched::RemoteChanged => report.changed_meanwhile.push(d.rel),
            Fetched::Failed(error) => report.failed.push(PullFailure { path: d.rel, error }),
            Fetched::Unreachable(message) => {
                out.unreachable = Some(message);
                break;
            }
        }
    }
    out
}

fn finish(mut report: PullReport, started: Instant) -> PullReport {
    // Waiting now: those here before, those this pass wrote beside a path, and those it
    // brought down from another machine.
    let written = report.conflicts.iter().map(|c| c.conflict_file.clone());
    let came_down = (report.downloaded.iter())
        .filter(|rel| crate::names::parse_sync_conflict(rel).is_some())
        .cloned();
    for file in written.chain(came_down).collect::<Vec<_>>() {
        if !report.waiting.contains(&file) {
            report.waiting.push(file);
        }
    }
    for list in [
        &mut report.downloaded,
        &mut report.deleted,
        &mut report.changed_meanwhile,
        &mut report.held_deletes,
        &mut report.skipped,
        &mut report.clashes,
        &mut report.damaged,
        &mut report.waiting,
    ] {
        list.sort();
    }
    report.conflicts.sort_by(|a, b| a.path.cmp(&b.path));
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The row that makes the remote version `blob` the path's base with no usable stat: the
/// next push sees the local file as changed and puts it over that version (If-Match).
fn rebased(rel: &str, blob: &RemoteBlob, md5: [u8; 16]) -> (Record, SyncInfo) {
    (
        Record {
            rel: rel.to_string(),
            entry: IndexEntry {
                size: blob.size,
                mtime_ns: 0,
                ctime_ns: 0,
                md5,
                etag: Some(blob.etag.clone()),
                conflict: false,
                recorded_unix: 0,
            },
        },
        SyncInfo {
            writer: blob.writer.clone(),
            origin: Origin::Pulled,
            ..Default::default()
        },
    )
}

/// Decide one path from the three maps.
#[allow(clippy::too_many_arguments)]
fn decide_one(
    dest: &Beneath,
    rel: &str,
    locals: &HashMap<String, LocalFile>,
    rows: &HashMap<String, IndexEntry>,
    blobs: &BTreeMap<String, RemoteBlob>,
    dirs: &HashSet<String>,
    own_tag: &str,
    history_md5s: Option<&HashSet<[u8; 16]>>,
) -> Result<Decided, String> {
    let blob = blobs.get(rel);
    let remote = match (blob, dirs.contains(rel)) {
        (Some(_), true) => crate::sync::Remote::Clash,
        (Some(b), false) => crate::sync::Remote::Blob(b),
        (None, true) => crate::sync::Remote::Directory,
        (None, false) => crate::sync::Remote::Absent,
    };
    let local_file = locals.get(rel);
    let local = match local_file {
        Some(f) => crate::sync::Local::File(f),
        // Something that is no regular file (a directory, a link) is never replaced.
        None if blob.is_some() && std::fs::symlink_metadata(dest.path().join(rel)).is_ok() => {
            crate::sync::Local::NotRegular
        }
        None => crate::sync::Local::Absent,
    };
    let kind = Kind::of(rel, own_tag);
    let facts = Facts { history_md5s };
    let mut hash = || {
        let f = dest.open_file(rel)?;
        crate::fsutil::md5_of_reader(&f).map(|(md5, _)| md5)
    };
    let action = crate::sync::decide(local, rows.get(rel), remote, &kind, &facts, &mut hash)
        .map_err(|e| format!("cannot read the local file: {e}"))?;
    Ok(Decided {
        rel: rel.to_string(),
        action,
        local: local_file.cloned(),
        blob: blob.cloned(),
        reuse: None,
        reuse_blob: None,
    })
}

/// The conflict file of `rel` a conflict may write over: here, recorded as pushed, and not
/// changed since (its content is on the remote, and a replaced version goes to history); or
/// not pushed yet and holding the path's base, as an earlier pull wrote it (the base is a
/// version the remote keeps, current or in its history).
fn reusable_conflict_file(
    dest: &Beneath,
    rel: &str,
    locals: &HashMap<String, LocalFile>,
    rows: &HashMap<String, IndexEntry>,
) -> Option<LocalFile> {
    let mut candidates: Vec<&LocalFile> = locals
        .values()
        .filter(|f| crate::names::conflict_original(&f.rel).as_deref() == Some(rel))
        .filter(|f| crate::names::parse_sync_conflict(&f.rel).is_some())
        .collect();
    candidates.sort_by(|a, b| a.rel.cmp(&b.rel));
    candidates
        .into_iter()
        .find(|f| {
            let md5_is = |want: [u8; 16]| {
                dest.open_file(&f.rel)
                    .and_then(crate::fsutil::md5_of_reader)
                    .is_ok_and(|(md5, _)| md5 == want)
            };
            match rows.get(&f.rel) {
                // A row recorded moments ago is racy: the bytes say whether it is untouched.
                Some(row) if !row.conflict => {
                    row.describes(f.size, f.mtime_ns, f.ctime_ns) || md5_is(row.md5)
                }
                Some(_) => false,
                // A base row marked `conflict` may hold our own bytes, never uploaded.
                None => rows
                    .get(rel)
                    .is_some_and(|base| !base.conflict && md5_is(base.md5)),
            }
        })
        .cloned()
}

/// The conflict file of `rel` another machine pushed that is new here (no file, no row: not
/// one the user deleted here, whose delete is on its way) and not taken by another conflict
/// of this pass: the first by name, so machines settling the same path pick the same one.
fn listed_conflict_file(
    rel: &str,
    blobs: &BTreeMap<String, RemoteBlob>,
    locals: &HashMap<String, LocalFile>,
    rows: &HashMap<String, IndexEntry>,
    claimed: &HashSet<String>,
) -> Option<RemoteBlob> {
    blobs
        .values()
        .filter(|b| crate::names::parse_sync_conflict(&b.name).is_some())
        .filter(|b| crate::names::conflict_original(&b.name).as_deref() == Some(rel))
        .find(|b| {
            b.md5.is_some()
                && !locals.contains_key(&b.name)
                && !rows.contains_key(&b.name)
                && !claimed.contains(&b.name)
        })
        .cloned()
}

/// The guard in the pull direction: more local deletes in the window than the threshold
/// for the index's size (as for remote deletes) are all held, reported, and left.
fn hold_mass_deletes(
    recent: u64,
    decided: &mut [Decided],
    rows: u64,
    opts: &PullOptions,
    report: &mut PullReport,
) {
    let deletes = decided
        .iter()
        .filter(|d| d.action == Action::DeleteLocal)
        .count() as u64;
    if deletes == 0 || opts.allow_deletes {
        return;
    }
    if deletes + recent <= crate::push::mass_delete_threshold(rows) {
        return;
    }
    for d in decided
        .iter_mut()
        .filter(|d| d.action == Action::DeleteLocal)
    {
        d.action = Action::Nothing;
        report.held_deletes.push(d.rel.clone());
    }
}

/// The conflict file for the remote version of a path both sides changed.
fn conflict_file_for(d: &Decided) -> Option<String> {
    let blob = d.blob.as_ref()?;
    let when = blob
        .service_ns
        .or(blob.written_ns)
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp_nanos());
    // The host its writer named, else its writer id (an older binary's blob).
    let host = (blob.host.as_deref())
        .or(blob.writer.as_deref())
        .unwrap_or("remote");
    crate::names::sync_conflict_name(&d.rel, when, host)
}

/// Download one decided path: into place, or beside it as a conflict file.
#[allow(clippy::too_many_arguments)]
async fn fetch_one(
    remote: &dyn Remote,
    retry: RetryPolicy,
    downloads: &tokio::sync::Semaphore,
    durable: &Barrier,
    dest: &Beneath,
    d: Decided,
    stamp: &str,
) -> (Decided, Fetched, Option<String>) {
    let Some(blob) = d.blob.as_ref() else {
        return (d, Fetched::Failed("nothing to download".into()), None);
    };
    if blob.corrupt {
        let damaged = RemoteError::Corrupt {
            name: blob.name.clone(),
        };
        return (
            d,
            Fetched::Failed(format!("not downloaded: {damaged}")),
            None,
        );
    }
    if blob.md5.is_none() {
        let error = "the listing has no MD5 to verify it with; not downloaded".to_string();
        return (d, Fetched::Failed(error), None);
    }
    // Into this path's conflict file already here, or one another machine pushed.
    let reused = match (&d.reuse, &d.reuse_blob) {
        (Some(old), _) => Some((old.rel.clone(), Some(old.clone()))),
        (None, Some(listed)) => Some((listed.name.clone(), None)),
        (None, None) => None,
    };
    if d.action == Action::Conflict
        && let Some((name, over)) = reused
    {
        let fetched = apply::fetch(
            remote,
            retry,
            downloads,
            durable,
            dest,
            blob,
            &name,
            over.as_ref(),
            stamp,
        );
        let fetched = fetched.await;
        return (d, fetched, Some(name));
    }
    if d.action == Action::Conflict {
        let Some(file) = conflict_file_for(&d) else {
            let error = "no conflict file name fits beside it; left as it is".to_string();
            return (d, Fetched::Failed(error), None);
        };
        // The name is the version's (its service time to the second, its writer): two
        // versions of one writer within a second share it, so a taken name holding other
        // bytes moves on to NAME-2, NAME-3, …
        for n in 1..=MAX_NAME_TRIES {
            let name = match n {
                1 => file.clone(),
                n => crate::names::numbered(&file, n),
            };
            match apply::fetch(
                remote, retry, downloads, durable, dest, blob, &name, None, stamp,
            )
            .await
            {
                // The same version's conflict file made by an earlier pass: already there.
                Fetched::LocalChanged => {
                    if let Some(placed) = already_there(dest, &name, blob) {
                        return (d, placed, Some(name));
                    }
                }
                other => return (d, other, Some(name)),
            }
        }
        let error = format!("{file} and the next names are taken; left as it is");
        return (d, Fetched::Failed(error), None);
    }
    let over = d.local.as_ref();
    let fetched = apply::fetch(
        remote, retry, downloads, durable, dest, blob, &d.rel, over, stamp,
    )
    .await;
    (d, fetched, None)
}

/// How many names a conflict file tries before it gives up.
const MAX_NAME_TRIES: u32 = 20;

/// A local file already holding the blob's bytes, as a placed download.
fn already_there(dest: &Beneath, rel: &str, blob: &RemoteBlob) -> Option<Fetched> {
    let f = dest.open_file(rel).ok()?;
    let (md5, _) = crate::fsutil::md5_of_reader(&f).ok()?;
    let meta = f.metadata().ok()?;
    (Some(md5) == blob.md5).then_some(Fetched::Placed { meta, md5 })
}
