//! The way back: download the current view of the remote (or the view as of a time) into
//! a directory, in parallel. What comes down is untrusted: only names a push would upload
//! are written (the local filter; the rest is reported as skipped), each file is checked
//! against the size and MD5 the listing gave ([`download`]), written to a locked temporary
//! file beside it ([`temp`]), fsynced and put in place with no-replace renames, never over a
//! local file that differs or that appeared meanwhile ([`place`]); with `--overwrite` the
//! local file is kept as `NAME.local-<time>-<random>.EXT`. The first file the remote cannot
//! be reached for stops the run.
//!
//! Returns the index rows for what it wrote, so a restore into the journal root is known
//! to the next push, which then uploads nothing; the caller decides who writes them (only
//! one process writes the index).

pub(crate) mod download;
pub(crate) mod durable;
pub(crate) mod place;
pub mod temp;

pub use download::Expected;

use crate::filter::Filter;
use crate::fsutil::Beneath;
use crate::history::{self, Version};
use crate::remote::retry::RetryPolicy;
use crate::remote::{Remote, RemoteError};
use crate::state::{IndexEntry, Record};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Where files go: the journal root, or `--to DIR`.
    pub to: PathBuf,
    /// The view as of this time (`--at`); `None`: the current view.
    pub at: Option<OffsetDateTime>,
    pub dry_run: bool,
    /// Replace local files that differ, keeping each as `NAME.local-<time>-<random>.EXT`.
    pub overwrite: bool,
    /// Restore blobs the listing gives no MD5 for (their size is still checked).
    pub allow_unverified: bool,
    /// The destination was given by `--to`: refuse a symlink at its top and a directory
    /// another user owns (the journal root itself may be a symlink: the configuration's
    /// choice).
    pub strict_top: bool,
    /// The names a push from here would upload (the local configuration and the local
    /// `.devlogignore`): nothing else is written.
    pub filter: Filter,
    /// Only these paths (files, or directories and everything below); empty: all.
    pub paths: Vec<String>,
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

/// What a restore did; `--json` prints it as is.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub to: String,
    /// The view restored: RFC 3339, or `None` for the current one.
    pub at: Option<String>,
    pub dry_run: bool,
    /// Files in the view (after the PATH filter), skipped ones aside.
    pub files: u64,
    pub restored: u64,
    pub restored_bytes: u64,
    /// Already there with the same content.
    pub unchanged: u64,
    /// Dry run: what would be written.
    pub would_restore: Vec<String>,
    /// Local files that differ from the remote version (or appeared or changed while it
    /// was downloaded), left as they are.
    pub kept_local: Vec<String>,
    /// Names in the view a push would never upload (hidden, excluded, ignored, or not
    /// storable as a blob): not written.
    pub skipped: Vec<String>,
    /// Local files that differed and were replaced (`--overwrite`), and where they went.
    pub replaced_local: Vec<ReplacedLocal>,
    pub failed: Vec<RestoreFailure>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplacedLocal {
    pub path: String,
    pub kept_as: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreFailure {
    pub path: String,
    pub error: String,
}

impl RestoreReport {
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Progress while a restore runs.
#[derive(Debug, Clone)]
pub enum RestoreEvent {
    Planned { files: u64, bytes: u64 },
    Restored { path: String, bytes: u64 },
    Failed { path: String, error: String },
}

/// Errors that stop a restore as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot list {remote}: {error}")]
    List { remote: String, error: RemoteError },
    #[error("cannot write into {path}: {error}")]
    Destination { path: String, error: std::io::Error },
    /// `--to` names a symlink or another user's directory.
    #[error("will not restore into {path}: {why}")]
    Refused { path: String, why: String },
    /// `--at` is before anything was backed up: nothing to restore, and the time that works.
    #[error("nothing was backed up to {remote} as of {at}: {oldest}")]
    BeforeFirst {
        remote: String,
        at: String,
        oldest: String,
    },
    /// The remote stopped answering (after the retry policy): every other download would
    /// fail the same way. Files already placed stay.
    #[error(
        "cannot reach {remote} ({message}); nothing more was tried, run restore again to continue"
    )]
    Unreachable { remote: String, message: String },
}

/// Whether `rel` is selected by the PATH arguments.
fn selected(rel: &str, paths: &[String]) -> bool {
    paths.is_empty()
        || paths.iter().any(|p| {
            let p = p.trim_end_matches('/');
            p.is_empty() || rel == p || rel.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
        })
}

/// Whether a push would upload `rel`: the filter and the blob-name rules accept it, also
/// with its format characters (zero-width, bidi) removed — some file systems (HFS+) ignore
/// them in names, so `\u{200c}.git/config` would land in `.git/config`.
pub fn would_push(filter: &Filter, rel: &str, prefix: &str) -> bool {
    let visible: String = rel
        .chars()
        .filter(|&c| !crate::redact::is_format(c))
        .collect();
    filter.accepts_path(rel)
        && filter.accepts_path(&visible)
        && crate::blobname::check(rel, prefix).is_ok()
}

/// A name from the remote that is safe to write below the destination.
pub(crate) fn safe(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !history::is_history(rel)
}

/// The versions to restore: the current view, or the view as of `at`.
pub async fn view(
    remote: &dyn Remote,
    at: Option<OffsetDateTime>,
    retry: RetryPolicy,
) -> Result<Vec<Version>, RemoteError> {
    let current = retry.run(|| remote.list()).await?;
    Ok(match at {
        None => current.iter().map(Version::of_current).collect(),
        Some(t) => {
            let history = retry.run(|| remote.list_history(None)).await?;
            history::view_at(&current, &history, t.unix_timestamp_nanos())
        }
    })
}

enum Outcome {
    Restored {
        path: String,
        record: Option<Record>,
        bytes: u64,
    },
    Unchanged {
        record: Option<Record>,
    },
    WouldRestore(String),
    KeptLocal(String),
    Replaced {
        path: String,
        record: Option<Record>,
        bytes: u64,
        kept_as: String,
    },
    Failed {
        path: String,
        error: String,
    },
    /// The remote could not be reached: the run stops.
    Unreachable(String),
}

struct Job {
    version: Version,
    /// The current blob at the path, when there is one (for the index row).
    current: Option<(String, Option<String>)>,
}

pub async fn run(
    remote: &dyn Remote,
    opts: &RestoreOptions,
    progress: &(dyn Fn(RestoreEvent) + Send + Sync),
) -> Result<(RestoreReport, Vec<Record>), RestoreError> {
    let started = Instant::now();
    let mut report = RestoreReport {
        to: opts.to.display().to_string(),
        at: opts.at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let list_error = |error| RestoreError::List {
        remote: remote.describe(),
        error,
    };
    let mut versions = view(remote, opts.at, opts.retry)
        .await
        .map_err(list_error)?;
    // A time before the first backup is not a silent "0 files": say which time works.
    if let Some(at) = opts.at
        && versions.is_empty()
    {
        let current = opts.retry.run(|| remote.list()).await.map_err(list_error)?;
        let history = (opts.retry.run(|| remote.list_history(None)).await).map_err(list_error)?;
        let oldest = match history::oldest_written(&current, &history)
            .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
        {
            Some(t) => format!(
                "the oldest version there is from {}; restore --at that time or later",
                history::rfc3339_seconds(t)
            ),
            None => "it holds no versions yet".to_string(),
        };
        return Err(RestoreError::BeforeFirst {
            remote: remote.describe(),
            at: history::rfc3339_seconds(at),
            oldest,
        });
    }
    // The current blob of each path: its ETag and MD5 go in the index row.
    let current: HashMap<String, (String, Option<String>)> = if opts.at.is_some() {
        opts.retry
            .run(|| remote.list())
            .await
            .map_err(list_error)?
            .into_iter()
            .map(|b| {
                (
                    b.name.clone(),
                    (b.etag.clone(), b.md5.as_ref().map(crate::remote::hex)),
                )
            })
            .collect()
    } else {
        versions
            .iter()
            .map(|v| (v.path.clone(), (v.etag.clone(), v.md5.clone())))
            .collect()
    };
    versions.retain(|v| selected(&v.path, &opts.paths));
    versions.sort_by(|a, b| a.path.cmp(&b.path));
    report.files = versions.len() as u64;
    let mut jobs = Vec::new();
    let prefix = remote.name_prefix();
    for v in versions {
        if !safe(&v.path) {
            report.failed.push(RestoreFailure {
                error: "not restored: the name cannot be a local path".into(),
                path: v.path,
            });
            continue;
        }
        // The rules a push follows, read from here: a name another writer planted (a
        // `.git/config`, a `.devlogignore`) never comes down.
        if !would_push(&opts.filter, &v.path, &prefix) {
            report.skipped.push(v.path);
            continue;
        }
        let current = current.get(&v.path).cloned();
        jobs.push(Job {
            version: v,
            current,
        });
    }
    report.files -= report.skipped.len() as u64;
    if opts.strict_top {
        check_top(&opts.to, None)?;
    }
    if !opts.dry_run {
        crate::fsutil::private_dir_all(&opts.to).map_err(|error| RestoreError::Destination {
            path: opts.to.display().to_string(),
            error,
        })?;
    }
    let dest = match Beneath::open(&opts.to) {
        Ok(d) => Arc::new(d),
        // A dry run into a directory that does not exist yet: everything would be written.
        Err(e) if opts.dry_run && crate::fsutil::is_gone(&e) => {
            report.would_restore = jobs.into_iter().map(|j| j.version.path).collect();
            report.duration_ms = started.elapsed().as_millis() as u64;
            return Ok((report, Vec::new()));
        }
        Err(error) => {
            return Err(RestoreError::Destination {
                path: opts.to.display().to_string(),
                error,
            });
        }
    };
    if opts.strict_top {
        // The directory opened is the one checked: not reached through a symlink swapped in.
        check_top(&opts.to, Some(&dest))?;
    }
    if !opts.dry_run {
        // What an earlier restore or fetch that died left behind.
        let swept = temp::sweep(&dest);
        if swept > 0 {
            tracing::info!(swept, "removed temporary files a stopped restore left");
        }
    }
    progress(RestoreEvent::Planned {
        files: jobs.len() as u64,
        // Listed sizes are the remote's word: a sum must not overflow.
        bytes: jobs
            .iter()
            .fold(0u64, |sum, j| sum.saturating_add(j.version.size)),
    });
    let stamp = local_copy_stamp(OffsetDateTime::now_utc());
    let durable = durable::Barrier::new(dest.fd()).map_err(|error| RestoreError::Destination {
        path: opts.to.display().to_string(),
        error,
    })?;
    // `concurrency` downloads in flight; up to 64 more finished ones wait for the flush that
    // makes them durable without holding a download's place (the flush would otherwise stall
    // every download behind it).
    let downloads = tokio::sync::Semaphore::new(opts.concurrency.max(1));
    let mut outcomes = futures::stream::iter(jobs)
        .map(|job| restore_one(remote, &dest, &downloads, &durable, job, opts, &stamp))
        .buffer_unordered(opts.concurrency.max(1) + FLUSH_QUEUE);
    let mut records = Vec::new();
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Restored {
                path,
                record,
                bytes,
            } => {
                progress(RestoreEvent::Restored { path, bytes });
                report.restored += 1;
                report.restored_bytes += bytes;
                records.extend(record);
            }
            Outcome::Unchanged { record } => {
                report.unchanged += 1;
                records.extend(record);
            }
            Outcome::WouldRestore(path) => report.would_restore.push(path),
            Outcome::KeptLocal(path) => report.kept_local.push(path),
            Outcome::Replaced {
                path,
                record,
                bytes,
                kept_as,
            } => {
                progress(RestoreEvent::Restored {
                    path: path.clone(),
                    bytes,
                });
                report.restored += 1;
                report.restored_bytes += bytes;
                report.replaced_local.push(ReplacedLocal { path, kept_as });
                records.extend(record);
            }
            Outcome::Failed { path, error } => {
                progress(RestoreEvent::Failed {
                    path: path.clone(),
                    error: error.clone(),
                });
                report.failed.push(RestoreFailure { path, error });
            }
            Outcome::Unreachable(message) => {
                // The downloads still running are dropped (their temporary files go with
                // them); what was placed stays.
                drop(outcomes);
                sync_renames(&dest);
                return Err(RestoreError::Unreachable {
                    remote: remote.describe(),
                    message,
                });
            }
        }
    }
    if !opts.dry_run && report.restored > 0 {
        sync_renames(&dest);
    }
    report.would_restore.sort();
    report.kept_local.sort();
    report.skipped.sort();
    report.replaced_local.sort_by(|a, b| a.path.cmp(&b.path));
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok((report, records))
}

/// Refuse a destination given by `--to` that is a symlink or another user's directory;
/// with `opened`, also one that is not the directory opened.
fn check_top(to: &std::path::Path, opened: Option<&Beneath>) -> Result<(), RestoreError> {
    use std::os::unix::fs::MetadataExt;
    let refused = |why: String| RestoreError::Refused {
        path: to.display().to_string(),
        why,
    };
    let meta = match std::fs::symlink_metadata(to) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && opened.is_none() => return Ok(()),
        Err(error) => {
            return Err(RestoreError::Destination {
                path: to.display().to_string(),
                error,
            });
        }
    };
    if meta.file_type().is_symlink() {
        return Err(refused(
            "it is a symbolic link; give the directory it points to".into(),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refused(format!(
            "it is owned by another user (uid {}); restore into a directory of your own",
            meta.uid()
        )));
    }
    if let Some(dest) = opened {
        let same = rustix::fs::fstat(dest.fd())
            .is_ok_and(|st| st.st_dev == meta.dev() && st.st_ino == meta.ino());
        if !same {
            return Err(refused("it was replaced while it was opened".into()));
        }
    }
    Ok(())
}

/// Each file's data is fsynced before its rename; one flush of the destination's file
/// system then makes the renames themselves durable.
fn sync_renames(dest: &Beneath) {
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::syncfs(dest.fd());
    #[cfg(not(target_os = "linux"))]
    dest.sync();
}

/// Why [`fetch_new`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not a safe local name")]
    UnsafeName(String),
    #[error("{0} has no MD5 to verify it with; not fetched")]
    NoMd5(String),
    #[error("{0} already exists: left as it is (move it away to fetch again)")]
    Exists(String),
    #[error("{0} is no longer on the remote")]
    Gone(String),
    #[error("{blob}: {source}")]
    Download {
        blob: String,
        source: download::DownloadError,
    },
    /// `doing` names the step: "open its directory", "check NAME", "write NAME".
    #[error("cannot {doing}: {source}")]
    Local {
        doing: String,
        source: std::io::Error,
    },
}

fn local(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> FetchError {
    let doing = doing.into();
    move |source| FetchError::Local { doing, source }
}

/// Download `blob` to the new file `to_rel` below `dest`: checked against what the listing
/// gave (`expected`; a blob listed without an MD5 is refused) and put in place with a
/// no-replace rename, never over an existing file. The bytes written.
pub async fn fetch_new(
    remote: &dyn Remote,
    dest: &Beneath,
    blob: &str,
    expected: Expected,
    to_rel: &str,
    retry: RetryPolicy,
) -> Result<u64, FetchError> {
    if !safe(to_rel) {
        return Err(FetchError::UnsafeName(to_rel.to_string()));
    }
    if expected.md5.is_none() {
        return Err(FetchError::NoMd5(blob.to_string()));
    }
    let (parent_rel, name) = split(to_rel);
    let parent = dest
        .open_dir(parent_rel, true)
        .map_err(local("open its directory"))?;
    match parent.open_file(name) {
        Ok(_) => return Err(FetchError::Exists(to_rel.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(local(format!("check {to_rel}"))(e)),
    }
    let (tmp_name, file) = temp::create(&parent, ".devlogd-fetch-").map_err(local("write"))?;
    // Unlinked on every way out; the file stays only under its new name.
    let mut tmp = temp::TempName {
        dir: &parent,
        name: &tmp_name,
        placed: false,
    };
    download::download_checked(remote, retry, blob, expected, &file)
        .await
        .map_err(|e| match e {
            download::DownloadError::Gone => FetchError::Gone(blob.to_string()),
            source => FetchError::Download {
                blob: blob.to_string(),
                source,
            },
        })?;
    file.sync_all().map_err(local(format!("write {to_rel}")))?;
    place::rename_new(&parent, &tmp_name, name).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            FetchError::Exists(to_rel.to_string())
        } else {
            local(format!("write {to_rel}"))(e)
        }
    })?;
    tmp.placed = true;
    Ok(expected.size)
}

/// `20261129T090539Z`, for `.local-<time>-<random>` copies.
pub(crate) fn local_copy_stamp(t: OffsetDateTime) -> String {
    history::stamp(t)
        .split('.')
        .next()
        .map(|s| format!("{s}Z"))
        .unwrap_or_default()
}

/// `a/b/c.md` → (`a/b`, `c.md`); a top-level name has the directory `""`.
pub(crate) fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

/// The index row for a file just written (or found equal): the stat it has now, and the
/// remote version it matches. A version older than the current blob is recorded against
/// the current blob with no usable stat, so the next push sees a changed file and
/// uploads it (keeping the current blob in history): restoring an old version brings it
/// back.
fn record_for(rel: &str, meta: &std::fs::Metadata, md5: [u8; 16], job: &Job) -> Option<Record> {
    let (etag, current_md5) = job.current.clone()?;
    let current_md5 = current_md5.and_then(|h| unhex(&h))?;
    let (size, mtime_ns) = crate::scan::stat_of(meta);
    Some(Record {
        rel: rel.to_string(),
        entry: IndexEntry {
            size,
            mtime_ns: if current_md5 == md5 { mtime_ns } else { 0 },
            ctime_ns: crate::scan::ctime_of(meta),
            md5: current_md5,
            etag: Some(etag),
            conflict: false,
            recorded_unix: 0,
        },
    })
}

pub(crate) fn unhex(h: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if h.len() != 32 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What is at `rel` locally now: its MD5 and stat, `None` for nothing (or no regular file).
fn look(dest: &Beneath, rel: &str) -> Result<Option<([u8; 16], std::fs::Metadata)>, String> {
    let failed = |e: std::io::Error| format!("cannot read the local file: {e}");
    match dest.open_file(rel) {
        Ok(f) => {
            let (md5, _) = crate::fsutil::md5_of_reader(&f).map_err(failed)?;
            Ok(Some((md5, f.metadata().map_err(failed)?)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::NOTDIR) => {
            Ok(None)
        }
        Err(e) => Err(failed(e)),
    }
}

/// The outcome for a local file that is there to stay: unchanged when it holds the
/// version, kept otherwise.
fn settled(dest: &Beneath, rel: String, want: Option<[u8; 16]>, job: &Job) -> Outcome {
    match look(dest, &rel) {
        Ok(Some((md5, meta))) if Some(md5) == want => Outcome::Unchanged {
            record: record_for(&rel, &meta, md5, job),
        },
        Ok(_) => Outcome::KeptLocal(rel),
        Err(error) => Outcome::Failed { path: rel, error },
    }
}

/// How many downloaded files may wait for their flush beside the downloads in flight.
pub(crate) const FLUSH_QUEUE: usize = 64;

async fn restore_one(
    remote: &dyn Remote,
    dest: &Beneath,
    downloads: &tokio::sync::Semaphore,
    durable: &durable::Barrier,
    job: Job,
    opts: &RestoreOptions,
    stamp: &str,
) -> Outcome {
    // Held until the bytes are in: the flush that follows waits outside the limit.
    let Ok(download_slot) = downloads.acquire().await else {
        return Outcome::Failed {
            path: job.version.path,
            error: "the restore was stopped".into(),
        };
    };
    let rel = job.version.path.clone();
    let failed = |error: String| Outcome::Failed {
        path: rel.clone(),
        error,
    };
    if job.version.corrupt {
        let damaged = RemoteError::Corrupt { name: rel.clone() };
        return failed(format!("not restored: {damaged}"));
    }
    let want = job.version.md5.as_deref().and_then(unhex);
    if want.is_none() && !opts.allow_unverified {
        return failed(
            "the listing has no MD5 to verify it with; not restored (--allow-unverified restores it checking its size only)"
                .into(),
        );
    }
    // What is there locally now.
    let local = match look(dest, &rel) {
        Ok(local) => local,
        Err(e) => return failed(e),
    };
    let mut checked = None;
    if let Some((md5, meta)) = &local {
        if Some(*md5) == want {
            return Outcome::Unchanged {
                record: record_for(&rel, meta, *md5, &job),
            };
        }
        if !opts.overwrite {
            return Outcome::KeptLocal(rel);
        }
        checked = Some(place::Seen::of(meta));
    }
    if opts.dry_run {
        return Outcome::WouldRestore(rel);
    }
    let (parent_rel, name) = split(&rel);
    let parent = match dest.open_dir(parent_rel, true) {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot create its directory: {e}")),
    };
    // Download into a locked temporary file beside the destination.
    let (tmp_name, file) = match temp::create(&parent, ".devlogd-restore-") {
        Ok(created) => created,
        Err(e) => return failed(format!("cannot write: {e}")),
    };
    // Removed on every way out (an error, or the restore interrupted) but the rename.
    let mut tmp = temp::TempName {
        dir: &parent,
        name: &tmp_name,
        placed: false,
    };
    let expected = Expected {
        size: job.version.size,
        md5: want,
    };
    let md5 =
        match download::download_checked(remote, opts.retry, &job.version.blob, expected, &file)
            .await
        {
            Ok(md5) => md5,
            Err(download::DownloadError::Remote(RemoteError::Unreachable { message })) => {
                return Outcome::Unreachable(message);
            }
            Err(e) => return failed(e.to_string()),
        };
    // The version's own write time, so the file looks as old as its content.
    if let Some(ns) = job.version.written_ns
        && let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(ns)
    {
        let _ = file.set_times(std::fs::FileTimes::new().set_modified(t.into()));
    }
    drop(download_slot);
    // On disk before it has its name: a power cut never leaves an empty file there.
    if let Err(e) = durable.durable(&file).await {
        return failed(format!("cannot write: {e}"));
    }
    let placed = match place::place(&parent, &tmp_name, name, checked, stamp) {
        Ok(placed) => placed,
        Err(e) => return failed(format!("cannot write: {e}")),
    };
    let kept_as = match placed {
        place::Placed::New => None,
        place::Placed::Replaced { kept } => Some(kept),
        // Look again: the user's file stays.
        place::Placed::LocalChanged => return settled(dest, rel, want, &job),
        place::Placed::LocalMovedAside { kept } => {
            let kept = join(parent_rel, &kept);
            return failed(format!(
                "the local file changed while it was being replaced; it is kept as {kept}, nothing was restored"
            ));
        }
    };
    tmp.placed = true;
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return failed(format!("cannot read back: {e}")),
    };
    let bytes = job.version.size;
    let record = record_for(&rel, &meta, md5, &job);
    match kept_as {
        Some(kept) => Outcome::Replaced {
            kept_as: join(parent_rel, &kept),
            path: rel,
            record,
            bytes,
        },
        None => Outcome::Restored {
            path: rel,
            record,
            bytes,
        },
    }
}

/// The inverse of [`split`].
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_select_files_and_directories() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selected("a/b.md", &p(&[])));
        assert!(selected("a/b.md", &p(&["a"])));
        assert!(selected("a/b.md", &p(&["a/"])));
        assert!(selected("a/b.md", &p(&["a/b.md"])));
        assert!(!selected("ab/c.md", &p(&["a"])));
        assert!(!selected("a/b.md", &p(&["a/b"])));
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in ["", "/etc/x", "a/../b", "./a", "a//b", ".devlog-history/a/x"] {
            assert!(!safe(bad), "{bad}");
        }
        assert!(safe("notes/ü n#1.md"));
    }

    #[test]
    fn a_name_hidden_behind_format_characters_is_not_one_a_push_would_upload() {
        let include: Vec<String> = ["*.md", "*.toml", "config"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let filter =
            Filter::new(std::path::Path::new("/nonexistent"), &include, &[]).expect("a filter");
        assert!(would_push(&filter, "notes/a.md", ""));
        assert!(!would_push(&filter, ".git/config", ""));
        // HFS+ ignores U+200C and U+FEFF in names: these would land in `.git/`.
        assert!(!would_push(&filter, "\u{200c}.git/config", ""));
        assert!(!would_push(&filter, "\u{feff}.devlogignore.md", ""));
        // Control characters break the blob-name rules.
        assert!(!would_push(&filter, "n\u{1b}]0;x.md", ""));
    }

    #[test]
    fn hex_round_trip() {
        let md5 = [0xab; 16];
        assert_eq!(unhex(&crate::remote::hex(&md5)), Some(md5));
        assert_eq!(unhex("zz"), None);
    }
}
