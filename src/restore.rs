//! The way back: download the current view of the remote (or the view as of a time) into
//! a directory, in parallel, each file verified against its Content-MD5 and written
//! atomically (a temporary file beside it, renamed into place), never over a local file
//! that differs unless asked to (and then the local file is kept as `.local-<time>`).
//!
//! Returns the index rows for what it wrote, so a restore into the journal root is known
//! to the next push, which then uploads nothing; the caller decides who writes them (only
//! one process writes the index).

use crate::fsutil::Beneath;
use crate::history::{self, Version};
use crate::remote::retry::RetryPolicy;
use crate::remote::{Remote, RemoteError};
use crate::state::{IndexEntry, Record};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
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
    /// Replace local files that differ, keeping each as `<name>.local-<time>`.
    pub overwrite: bool,
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
    /// Files in the view (after the PATH filter).
    pub files: u64,
    pub restored: u64,
    pub restored_bytes: u64,
    /// Already there with the same content.
    pub unchanged: u64,
    /// Dry run: what would be written.
    pub would_restore: Vec<String>,
    /// Local files that differ from the remote version, left as they are.
    pub kept_local: Vec<String>,
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
}

/// Whether `rel` is selected by the PATH arguments.
fn selected(rel: &str, paths: &[String]) -> bool {
    paths.is_empty()
        || paths.iter().any(|p| {
            let p = p.trim_end_matches('/');
            p.is_empty() || rel == p || rel.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
        })
}

/// A name from the remote that is safe to write below the destination.
fn safe(rel: &str) -> bool {
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
    for v in versions {
        if !safe(&v.path) {
            report.failed.push(RestoreFailure {
                error: "not restored: the name cannot be a local path".into(),
                path: v.path,
            });
            continue;
        }
        let current = current.get(&v.path).cloned();
        jobs.push(Job {
            version: v,
            current,
        });
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
    progress(RestoreEvent::Planned {
        files: jobs.len() as u64,
        bytes: jobs.iter().map(|j| j.version.size).sum(),
    });
    let stamp = local_copy_stamp(OffsetDateTime::now_utc());
    let mut outcomes = futures::stream::iter(jobs)
        .map(|job| restore_one(remote, &dest, job, opts, &stamp))
        .buffer_unordered(opts.concurrency.max(1));
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
        }
    }
    if !opts.dry_run && report.restored > 0 {
        // One flush of the destination's filesystem for every file written (cheaper than
        // one fsync per file, and as durable once it returns).
        // SAFETY: syncfs on a directory descriptor we own.
        #[cfg(target_os = "linux")]
        unsafe {
            libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dest.fd()))
        };
    }
    report.would_restore.sort();
    report.kept_local.sort();
    report.replaced_local.sort_by(|a, b| a.path.cmp(&b.path));
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok((report, records))
}

/// Download `blob` to the new file `to_rel` below `dest`: checked against the blob's
/// Content-MD5 and put in place atomically, never over an existing file (the name is
/// linked into place, which fails if it exists). The bytes written.
pub async fn fetch_new(
    remote: &dyn Remote,
    dest: &Beneath,
    blob: &str,
    to_rel: &str,
    retry: RetryPolicy,
) -> Result<u64, String> {
    if !safe(to_rel) {
        return Err(format!("{to_rel} is not a safe local name"));
    }
    let (parent_rel, name) = split(to_rel);
    let parent = dest
        .open_dir(parent_rel, true)
        .map_err(|e| format!("cannot open its directory: {e}"))?;
    let exists = || format!("{to_rel} already exists: left as it is (move it away to fetch again)");
    match parent.open_file(name) {
        Ok(_) => return Err(exists()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot check {to_rel}: {e}")),
    }
    let (tmp_name, file) =
        create_temp(&parent, ".devlogd-fetch").map_err(|e| format!("cannot write: {e}"))?;
    // Unlinked on every way out; the file stays only under its new name.
    let _tmp = TempName {
        dir: &parent,
        name: &tmp_name,
        placed: false,
    };
    let found = match download_into(remote, retry, blob, &file).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err(format!("{blob} is no longer on the remote")),
        Err(e) => return Err(format!("cannot download {blob}: {e}")),
    };
    if found.md5.is_none() {
        return Err("the remote gave no MD5 to verify the download with".into());
    }
    file.sync_all()
        .map_err(|e| format!("cannot write {to_rel}: {e}"))?;
    link_new(&parent, &tmp_name, name).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists()
        } else {
            format!("cannot write {to_rel}: {e}")
        }
    })?;
    Ok(found.size)
}

/// A new file `PREFIX-<random>` in `parent`, 0600, for a download to go to before it is
/// put in place.
fn create_temp(parent: &Beneath, prefix: &str) -> std::io::Result<(String, std::fs::File)> {
    loop {
        let tmp_name = format!("{prefix}-{:016x}", rand::random::<u64>());
        match parent.open_here(
            &tmp_name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        ) {
            Ok(fd) => return Ok((tmp_name, std::fs::File::from(fd))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Download `blob` into `file` under the retry policy; a retry starts the file over.
async fn download_into(
    remote: &dyn Remote,
    retry: RetryPolicy,
    blob: &str,
    file: &std::fs::File,
) -> Result<Option<crate::remote::RemoteBlob>, RemoteError> {
    let write_error = |e: std::io::Error| RemoteError::Permanent {
        message: format!("cannot write: {e}"),
    };
    retry
        .run(|| async {
            let mut handle = file;
            handle.set_len(0).map_err(write_error)?;
            std::io::Seek::rewind(&mut handle).map_err(write_error)?;
            let mut writer = std::io::BufWriter::with_capacity(64 * 1024, handle);
            let found = remote.get(blob, &mut writer).await?;
            writer.flush().map_err(write_error)?;
            Ok(found)
        })
        .await
}

/// `linkat` within one directory: fails with `AlreadyExists` instead of replacing.
fn link_new(dir: &Beneath, from: &str, to: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let c = |s: &str| {
        std::ffi::CString::new(s)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (from, to) = (c(from)?, c(to)?);
    let fd = dir.fd().as_raw_fd();
    // SAFETY: both names are NUL-terminated and the descriptor is open for the call.
    let rc = unsafe { libc::linkat(fd, from.as_ptr(), fd, to.as_ptr(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `20261129T090539Z`, for `.local-<time>` copies.
fn local_copy_stamp(t: OffsetDateTime) -> String {
    history::stamp(t)
        .split('.')
        .next()
        .map(|s| format!("{s}Z"))
        .unwrap_or_default()
}

/// A temporary file's name, unlinked on drop unless it was renamed into place.
struct TempName<'a> {
    dir: &'a Beneath,
    name: &'a str,
    placed: bool,
}

impl Drop for TempName<'_> {
    fn drop(&mut self) {
        if !self.placed {
            let _ = self.dir.unlink_here(self.name);
        }
    }
}

fn split(rel: &str) -> (&str, &str) {
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

fn unhex(h: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if h.len() != 32 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

async fn restore_one(
    remote: &dyn Remote,
    dest: &Beneath,
    job: Job,
    opts: &RestoreOptions,
    stamp: &str,
) -> Outcome {
    let rel = job.version.path.clone();
    let failed = |error: String| Outcome::Failed {
        path: rel.clone(),
        error,
    };
    // What is there locally now.
    let local = match dest.open_file(&rel) {
        Ok(f) => match crate::fsutil::md5_of_reader(&f) {
            Ok((md5, _)) => Some((md5, f)),
            Err(e) => return failed(format!("cannot read the local file: {e}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => None,
        Err(e) => return failed(format!("cannot read the local file: {e}")),
    };
    let want = job.version.md5.as_deref().and_then(unhex);
    let mut kept_as = None;
    if let Some((md5, file)) = &local {
        if Some(*md5) == want {
            return match file.metadata() {
                Ok(meta) => Outcome::Unchanged {
                    record: record_for(&rel, &meta, *md5, &job),
                },
                Err(e) => failed(format!("cannot read the local file: {e}")),
            };
        }
        if !opts.overwrite {
            return Outcome::KeptLocal(rel);
        }
        kept_as = Some(format!("{rel}.local-{stamp}"));
    }
    if opts.dry_run {
        return Outcome::WouldRestore(rel);
    }
    let (parent_rel, name) = split(&rel);
    let parent = match dest.open_dir(parent_rel, true) {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot create its directory: {e}")),
    };
    // Download into a temporary file beside the destination.
    let (tmp_name, file) = match create_temp(&parent, ".devlogd-restore") {
        Ok(created) => created,
        Err(e) => return failed(format!("cannot write: {e}")),
    };
    // Removed on every way out (an error, or the restore interrupted) but the rename.
    let mut tmp = TempName {
        dir: &parent,
        name: &tmp_name,
        placed: false,
    };
    let blob = match download_into(remote, opts.retry, &job.version.blob, &file).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return failed("the blob disappeared from the remote meanwhile".into());
        }
        Err(e) => {
            return failed(format!("cannot download: {e}"));
        }
    };
    let Some(md5) = blob.md5 else {
        return failed("the remote gave no MD5 to verify the download with".into());
    };
    // The version's own write time, so the file looks as old as its content.
    if let Some(ns) = job.version.written_ns
        && let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(ns)
    {
        let _ = file.set_times(std::fs::FileTimes::new().set_modified(t.into()));
    }
    if let Some(kept) = &kept_as {
        let (_, kept_name) = split(kept);
        if let Err(e) = parent.rename_to(name, &parent, kept_name) {
            return failed(format!("cannot keep the local file aside: {e}"));
        }
    }
    if let Err(e) = parent.rename_to(&tmp_name, &parent, name) {
        return failed(format!("cannot write: {e}"));
    }
    tmp.placed = true;
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return failed(format!("cannot read back: {e}")),
    };
    let bytes = blob.size;
    let record = record_for(&rel, &meta, md5, &job);
    match kept_as {
        Some(kept_as) => Outcome::Replaced {
            path: rel,
            record,
            bytes,
            kept_as,
        },
        None => Outcome::Restored {
            path: rel,
            record,
            bytes,
        },
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
    fn hex_round_trip() {
        let md5 = [0xab; 16];
        assert_eq!(unhex(&crate::remote::hex(&md5)), Some(md5));
        assert_eq!(unhex("zz"), None);
    }
}
