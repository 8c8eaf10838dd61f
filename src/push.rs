//! The push pipeline: scan → plan against the state index → upload → commit.
//!
//! Every upload goes through [`run`], whoever asks (the `push` command, the daemon's
//! worker). Uploads run with bounded concurrency; each carries its MD5 and a precondition,
//! transient failures are retried by [`RetryPolicy`], a conflict goes to the configured
//! policy, and one file's failure never stops the others. Only an authentication failure
//! stops the run, since every further request would fail the same way. Successes are
//! committed to the index in batches as they arrive, so an interrupted run keeps them.

use crate::config::OnConflict;
use crate::filter::Filter;
use crate::plan::{self, Decision, RemoteView, UploadReason};
use crate::remote::content::{Content, MemoryBudget, OpenError};
use crate::remote::{Precondition, Remote, RemoteBlob, RemoteError};
use crate::retry::RetryPolicy;
use crate::scan::{self, LocalFile};
use crate::state::{IndexEntry, Record, StateError, StateIndex};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Rows are committed at least this often during a long run (rows, or time since the
/// last commit), so little acknowledged work is held only in memory.
const COMMIT_EVERY: usize = 256;
const COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// List the remote and repair what differs (`--all`).
    pub all: bool,
    /// Upload every candidate (`--force`).
    pub force: bool,
    /// Plan and report only (`--dry-run`).
    pub dry_run: bool,
    /// Hash every candidate whatever its stat says (`--checksum`; the daemon's batches of
    /// paths the watcher saw written).
    pub checksum: bool,
    pub on_conflict: OnConflict,
    pub concurrency: usize,
    /// Only these relative paths (a daemon batch); `None` scans the whole root.
    pub paths: Option<Vec<String>>,
    pub retry: RetryPolicy,
    /// Stops starting new uploads (daemon shutdown); those in flight finish.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

/// What one run did; printed by the front ends, `--json` as is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushReport {
    pub mode: String,
    pub dry_run: bool,
    pub force: bool,
    /// Candidate files seen.
    pub scanned: u64,
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub unchanged: u64,
    /// Dry run: what would be uploaded.
    pub would_upload: Vec<PlannedUpload>,
    pub conflicts: Vec<ConflictReport>,
    pub failed: Vec<FileFailure>,
    /// Blobs with no local file (`--all`); never deleted.
    pub remote_only: Vec<String>,
    /// Files that changed while they were uploaded; pushed again next time.
    pub changed_during_upload: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedUpload {
    pub path: String,
    pub bytes: u64,
    pub reason: UploadReason,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConflictReport {
    pub path: String,
    /// `kept-both`, `overwritten` or `skipped` (`would-…` in a dry run).
    pub action: String,
    /// Where our version went, for keep-both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileFailure {
    pub path: String,
    pub error: String,
    /// Worth trying again later (the remote failed), as opposed to a local problem.
    #[serde(skip)]
    pub transient: bool,
}

impl PushReport {
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Progress, as it happens.
#[derive(Debug, Clone)]
pub enum PushEvent {
    Planned { files: u64, bytes: u64 },
    Uploaded { path: String, bytes: u64 },
    Failed { path: String, error: String },
    Conflict(ConflictReport),
}

/// Errors that stop a run as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "{remote}: {detail}; the credentials came from {credential_source}: {}",
        auth_hint(credential_source)
    )]
    Auth {
        remote: String,
        credential_source: String,
        detail: String,
        /// What was done before the refusal.
        report: Box<PushReport>,
    },
    #[error(
        "cannot reach {remote} ({detail}); stopped after {pending} file(s) could not be pushed: check remote.url and the network, then push again"
    )]
    Unreachable {
        remote: String,
        detail: String,
        pending: u64,
        report: Box<PushReport>,
    },
    #[error("cannot list {remote}: {error}")]
    List { remote: String, error: RemoteError },
    #[error(transparent)]
    State(#[from] StateError),
}

impl PushError {
    /// The exit code a command ends with (DESIGN.md's table).
    pub fn exit_code(&self) -> i32 {
        use crate::commands::exit;
        match self {
            PushError::Auth { .. } => exit::AUTH,
            PushError::Unreachable { .. } | PushError::List { .. } => exit::FILES_FAILED,
            PushError::State(_) => exit::USAGE,
        }
    }

    /// What was done before the run stopped, when anything was.
    pub fn partial_report(&self) -> Option<&PushReport> {
        match self {
            PushError::Auth { report, .. } | PushError::Unreachable { report, .. } => Some(report),
            PushError::List { .. } | PushError::State(_) => None,
        }
    }
}

/// What to check, by kind of credential.
pub fn auth_hint(source: &str) -> &'static str {
    if source.contains("Entra ID") {
        "log in (`az login`), or check AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, and give the identity the Storage Blob Data Contributor role on the container"
    } else if source.contains("account key") {
        "check that the key belongs to the account in remote.url and has not been rotated"
    } else {
        "check that the SAS token is valid, not expired, and allows read, add, create, write and list"
    }
}

/// What the pipeline works on.
pub struct PushContext<'a> {
    pub root: &'a Path,
    pub filter: &'a Filter,
    pub remote: &'a dyn Remote,
    pub state: &'a mut StateIndex,
    /// Host name used in conflict copy names.
    pub host: &'a str,
}

pub async fn run(
    ctx: PushContext<'_>,
    opts: &PushOptions,
    progress: &(dyn Fn(PushEvent) + Send + Sync),
) -> Result<PushReport, PushError> {
    let started = Instant::now();
    let PushContext {
        root,
        filter,
        remote,
        state,
        host,
    } = ctx;
    let mut report = PushReport {
        mode: if opts.all { "all" } else { "incremental" }.to_string(),
        dry_run: opts.dry_run,
        force: opts.force,
        ..Default::default()
    };

    let (scanned, index) = match &opts.paths {
        // A batch: scan the named paths (directories among them are walked), then read
        // the index rows of exactly the files found.
        Some(paths) => {
            let scanned = scan::scan_paths(root, filter, paths);
            let index = state.load_paths(scanned.files.iter().map(|f| f.rel.as_str()));
            (scanned, index)
        }
        // A full pass: walk and read the whole index at the same time (both I/O-bound).
        None => std::thread::scope(|s| {
            let scan = s.spawn(|| scan::scan_root(root, filter));
            let index = state.load();
            (scan.join().unwrap_or_default(), index)
        }),
    };
    let index = index?;
    for issue in scanned.issues {
        report.failed.push(FileFailure {
            path: issue.rel,
            error: issue.message,
            transient: issue.transient,
        });
    }
    // Every path must map one-to-one onto a blob name; one that cannot is refused alone.
    let prefix = remote.name_prefix();
    let mut scanned_files = Vec::with_capacity(scanned.files.len());
    for file in scanned.files {
        match crate::blobname::check(&file.rel, &prefix) {
            Ok(()) => scanned_files.push(file),
            Err(why) => report.failed.push(FileFailure {
                error: crate::blobname::refusal(&file.rel, &why),
                path: file.rel,
                transient: false,
            }),
        }
    }
    report.scanned = scanned_files.len() as u64;

    let listing: Option<HashMap<String, RemoteBlob>> = if opts.all {
        let blobs = opts
            .retry
            .run(|| remote.list())
            .await
            .map_err(|error| match error {
                RemoteError::Auth { message } => PushError::Auth {
                    remote: remote.describe(),
                    credential_source: remote.credential_source(),
                    detail: message,
                    report: Box::new(report.clone()),
                },
                RemoteError::Unreachable { message } => PushError::Unreachable {
                    remote: remote.describe(),
                    detail: message,
                    pending: report.scanned,
                    report: Box::new(report.clone()),
                },
                error => PushError::List {
                    remote: remote.describe(),
                    error,
                },
            })?;
        Some(blobs.into_iter().map(|b| (b.name.clone(), b)).collect())
    } else {
        None
    };
    if let Some(listing) = &listing {
        let local: HashSet<&str> = scanned_files.iter().map(|f| f.rel.as_str()).collect();
        let mut only: Vec<String> = listing
            .keys()
            .filter(|name| !local.contains(name.as_str()))
            .cloned()
            .collect();
        only.sort();
        report.remote_only = only;
    }

    // Every file is opened below this handle, never through a symlink.
    let root_dir = match crate::fsutil::Beneath::open(root) {
        Ok(dir) => std::sync::Arc::new(dir),
        Err(e) => {
            for file in scanned_files {
                report.failed.push(FileFailure {
                    path: file.rel,
                    error: format!("cannot open the journal root {}: {e}", root.display()),
                    transient: crate::fsutil::is_transient_io(&e),
                });
            }
            report.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }
    };

    // Plan.
    let writer = state.writer_id().to_string();
    let rules = plan::Rules {
        force: opts.force,
        revisit_conflicts: opts.on_conflict == OnConflict::Overwrite,
        writer: &writer,
        checksum: opts.checksum,
    };
    let mut records = Vec::new();
    let mut jobs = Vec::new();
    for file in scanned_files {
        if cancelled(opts) {
            break; // stopping: plan no further, upload nothing new
        }
        let known = index.get(&file.rel);
        let view = match &listing {
            None => RemoteView::NotListed,
            Some(l) => l
                .get(&file.rel)
                .map_or(RemoteView::Missing, RemoteView::Present),
        };
        let decision = plan::decide(&file, known, view, &rules, &mut || {
            crate::fsutil::md5_of_reader(root_dir.open_file(&file.rel)?).map(|(md5, _)| md5)
        });
        match decision {
            // Deleted (or replaced by a symlink) since the scan: no longer a candidate.
            Err(e) if crate::fsutil::is_gone(&e) => {
                report.scanned = report.scanned.saturating_sub(1)
            }
            Err(e) => report.failed.push(FileFailure {
                path: file.rel.clone(),
                error: read_error(&e),
                transient: crate::fsutil::is_transient_io(&e),
            }),
            Ok(Decision::Unchanged) => report.unchanged += 1,
            Ok(Decision::Record(entry)) => {
                report.unchanged += 1;
                records.push(Record {
                    rel: file.rel,
                    entry,
                });
            }
            Ok(Decision::Upload {
                reason,
                precondition,
            }) => jobs.push(Job {
                file,
                action: JobAction::Put {
                    reason,
                    precondition,
                },
            }),
            Ok(Decision::Conflict { .. }) => jobs.push(Job {
                file,
                action: JobAction::Conflict,
            }),
        }
    }

    if opts.dry_run {
        for job in jobs {
            match job.action {
                JobAction::Conflict => report.conflicts.push(ConflictReport {
                    path: job.file.rel.clone(),
                    action: format!("would-{}", policy_action(opts.on_conflict)),
                    copy: None,
                }),
                JobAction::Put { reason, .. } => report.would_upload.push(PlannedUpload {
                    path: job.file.rel,
                    bytes: job.file.size,
                    reason,
                }),
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    state.commit(&records)?;
    records.clear();

    progress(PushEvent::Planned {
        files: jobs.len() as u64,
        bytes: jobs.iter().map(|j| j.file.size).sum(),
    });

    // Upload.
    let abort = AtomicBool::new(false);
    let budget = MemoryBudget::default();
    let uploader = Uploader {
        budget: &budget,
        root_dir: &root_dir,
        root,
        remote,
        retry: opts.retry,
        on_conflict: opts.on_conflict,
        force: opts.force,
        host,
        writer: &writer,
        abort: &abort,
        cancel: opts.cancel.as_ref(),
    };
    let mut outcomes = futures::stream::iter(jobs)
        .map(|job| uploader.upload(job))
        .buffer_unordered(opts.concurrency.max(1));
    let mut last_commit = Instant::now();
    let mut auth_failure = None;
    let mut unreachable = None;
    let mut not_started = 0u64;
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Stored {
                record,
                bytes,
                conflict,
                uploaded,
                changed_during_upload,
            } => {
                if uploaded {
                    report.uploaded += 1;
                    report.uploaded_bytes += bytes;
                    if conflict.is_none() {
                        progress(PushEvent::Uploaded {
                            path: record.rel.clone(),
                            bytes,
                        });
                    }
                } else if conflict.is_none() {
                    report.unchanged += 1;
                }
                if let Some(c) = conflict {
                    progress(PushEvent::Conflict(c.clone()));
                    report.conflicts.push(c);
                }
                if changed_during_upload {
                    report.changed_during_upload.push(record.rel.clone());
                }
                records.push(record);
                if records.len() >= COMMIT_EVERY || last_commit.elapsed() >= COMMIT_INTERVAL {
                    state.commit(&records)?;
                    records.clear();
                    last_commit = Instant::now();
                }
            }
            Outcome::Failed {
                path,
                error,
                transient,
            } => {
                progress(PushEvent::Failed {
                    path: path.clone(),
                    error: error.clone(),
                });
                report.failed.push(FileFailure {
                    path,
                    error,
                    transient,
                });
            }
            Outcome::AuthFailed { detail } => {
                auth_failure.get_or_insert(detail);
            }
            Outcome::Unreachable { path, detail } => {
                report.failed.push(FileFailure {
                    path,
                    error: format!("cannot reach the remote: {detail}"),
                    transient: true,
                });
                unreachable.get_or_insert(detail);
            }
            Outcome::NotStarted => not_started += 1,
            Outcome::Gone => report.scanned = report.scanned.saturating_sub(1),
            Outcome::Changed { path } => report.changed_during_upload.push(path),
        }
    }
    drop(outcomes);
    state.commit(&records)?;
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.conflicts.sort_by(|a, b| a.path.cmp(&b.path));
    report.changed_during_upload.sort();
    report.duration_ms = started.elapsed().as_millis() as u64;
    if let Some(detail) = auth_failure {
        return Err(PushError::Auth {
            remote: remote.describe(),
            credential_source: remote.credential_source(),
            detail,
            report: Box::new(report),
        });
    }
    if let Some(detail) = unreachable {
        return Err(PushError::Unreachable {
            remote: remote.describe(),
            detail,
            pending: not_started + report.failed.len() as u64,
            report: Box::new(report),
        });
    }
    Ok(report)
}

fn policy_action(policy: OnConflict) -> &'static str {
    match policy {
        OnConflict::KeepBoth => "kept-both",
        OnConflict::Overwrite => "overwritten",
        OnConflict::Skip => "skipped",
    }
}

struct Job {
    file: LocalFile,
    action: JobAction,
}

enum JobAction {
    Put {
        reason: UploadReason,
        precondition: Precondition,
    },
    /// Planning already knows the blob is another writer's: go straight to the policy.
    Conflict,
}

enum Outcome {
    Stored {
        record: Record,
        bytes: u64,
        conflict: Option<ConflictReport>,
        /// False when the remote already held this content (adopted, or skipped).
        uploaded: bool,
        changed_during_upload: bool,
    },
    Failed {
        path: String,
        error: String,
        transient: bool,
    },
    AuthFailed {
        detail: String,
    },
    /// Retries ran out without reaching the service; the run stops.
    Unreachable {
        path: String,
        detail: String,
    },
    NotStarted,
    /// Deleted or replaced by something that is not a regular file since the scan: not a
    /// candidate any more, and not a failure.
    Gone,
    /// Changed while a large file's blocks were read: nothing was stored or recorded, and
    /// the file stays dirty.
    Changed {
        path: String,
    },
}

struct Uploader<'a> {
    budget: &'a MemoryBudget,
    root_dir: &'a std::sync::Arc<crate::fsutil::Beneath>,
    root: &'a Path,
    remote: &'a dyn Remote,
    retry: RetryPolicy,
    on_conflict: OnConflict,
    force: bool,
    host: &'a str,
    writer: &'a str,
    abort: &'a AtomicBool,
    cancel: Option<&'a tokio_util::sync::CancellationToken>,
}

impl Uploader<'_> {
    async fn upload(&self, job: Job) -> Outcome {
        if self.abort.load(Ordering::Relaxed) || self.cancel.is_some_and(|c| c.is_cancelled()) {
            return Outcome::NotStarted;
        }
        let rel = job.file.rel.clone();
        let abs = self.root.join(&rel);
        let content = match Content::open(self.root_dir, &rel, self.budget).await {
            Ok(c) => c,
            Err(OpenError::Gone) => return Outcome::Gone,
            Err(OpenError::Io(e)) => {
                return Outcome::Failed {
                    path: rel,
                    error: read_error(&e),
                    transient: crate::fsutil::is_transient_io(&e),
                };
            }
        };
        let result = match &job.action {
            JobAction::Conflict => self.resolve_conflict(&rel, &content).await,
            JobAction::Put { precondition, .. } => {
                match self.put(&rel, &content, precondition).await {
                    Err(RemoteError::Conflict) => self.resolve_conflict(&rel, &content).await,
                    other => other.map(|etag| Resolution::Uploaded { etag }),
                }
            }
        };
        let resolution = match result {
            Ok(r) => r,
            Err(RemoteError::Auth { message }) => {
                self.abort.store(true, Ordering::Relaxed);
                return Outcome::AuthFailed { detail: message };
            }
            Err(RemoteError::Unreachable { message }) => {
                self.abort.store(true, Ordering::Relaxed);
                return Outcome::Unreachable {
                    path: rel,
                    detail: message,
                };
            }
            Err(RemoteError::SourceChanged) => return Outcome::Changed { path: rel },
            Err(e) => {
                return Outcome::Failed {
                    path: rel,
                    transient: e.is_transient(),
                    error: e.to_string(),
                };
            }
        };
        // Record what was actually sent, with the stat it had when opened. If the file
        // changed meanwhile, or the path now names something else, its current stat
        // differs from the row and it stays dirty.
        let changed_during_upload = !content.still_at(&abs);
        let md5 = match content.md5().await {
            Ok(md5) => md5,
            Err(_) => return Outcome::Changed { path: rel },
        };
        let (etag, conflict_flag, conflict, uploaded) = match resolution {
            Resolution::Uploaded { etag } => (etag, false, None, true),
            Resolution::AlreadyThere { etag } => (etag, false, None, false),
            Resolution::Conflict {
                their_etag,
                report,
                uploaded_copy,
            } => (their_etag, true, Some(report), uploaded_copy),
            Resolution::Overwritten { etag, report } => (etag, false, Some(report), true),
        };
        Outcome::Stored {
            record: Record {
                rel,
                entry: IndexEntry {
                    size: content.stamp.size,
                    mtime_ns: content.stamp.mtime_ns,
                    ctime_ns: content.stamp.ctime_ns,
                    md5,
                    etag: Some(etag),
                    conflict: conflict_flag,
                    recorded_unix: 0,
                },
            },
            bytes: content.stamp.size,
            conflict,
            uploaded,
            changed_during_upload,
        }
    }

    async fn put(
        &self,
        name: &str,
        content: &Content,
        precondition: &Precondition,
    ) -> Result<String, RemoteError> {
        self.retry
            .run(|| self.remote.put(name, content, precondition, self.writer))
            .await
            .map(|o| o.etag)
    }

    /// Upload ours under a fresh conflict name; a name taken within the same second gets a
    /// counter, so one copy never replaces another.
    async fn put_conflict_copy(&self, rel: &str, content: &Content) -> Result<String, RemoteError> {
        let now = time::OffsetDateTime::now_utc();
        for n in 1..=100u32 {
            let copy = conflict_name(rel, self.host, now, n);
            if let Err(why) = crate::blobname::check(&copy, &self.remote.name_prefix()) {
                return Err(RemoteError::Permanent {
                    message: format!(
                        "changed by another writer, and no conflict copy can be made: {}",
                        crate::blobname::refusal(&copy, &why)
                    ),
                });
            }
            match self.put(&copy, content, &Precondition::IfAbsent).await {
                Err(RemoteError::Conflict) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(copy),
            }
        }
        Err(RemoteError::Permanent {
            message: format!("cannot find a free conflict name for {rel}"),
        })
    }

    /// The blob is not the version we expected: look at it, then apply the policy.
    async fn resolve_conflict(
        &self,
        rel: &str,
        content: &Content,
    ) -> Result<Resolution, RemoteError> {
        let current = self.retry.run(|| self.remote.head(rel)).await?;
        let Some(theirs) = current else {
            // Gone meanwhile (or deleted behind our back): create it.
            let etag = self.put(rel, content, &Precondition::IfAbsent).await?;
            return Ok(Resolution::Uploaded { etag });
        };
        let ours = content.md5().await?;
        // The mark names our writer only for a blob written under this very name and
        // still holding what we wrote there.
        if theirs.writer.as_deref() == Some(self.writer) && theirs.md5 != Some(ours) {
            // Our own earlier write that the index missed (a crash before the commit, a
            // lost response): not another writer's data, so it is replaced.
            let etag = self
                .put(rel, content, &Precondition::IfMatch(theirs.etag))
                .await?;
            return Ok(Resolution::Uploaded { etag });
        }
        if theirs.md5 == Some(ours) {
            if self.force {
                let etag = self
                    .put(rel, content, &Precondition::IfMatch(theirs.etag.clone()))
                    .await?;
                return Ok(Resolution::Uploaded { etag });
            }
            return Ok(Resolution::AlreadyThere { etag: theirs.etag });
        }
        match self.on_conflict {
            OnConflict::KeepBoth => {
                let copy = self.put_conflict_copy(rel, content).await?;
                tracing::warn!(path = rel, copy = %copy, "conflict: the remote blob was changed by another writer; kept both");
                Ok(Resolution::Conflict {
                    their_etag: theirs.etag,
                    report: ConflictReport {
                        path: rel.to_string(),
                        action: "kept-both".into(),
                        copy: Some(copy),
                    },
                    uploaded_copy: true,
                })
            }
            OnConflict::Overwrite => {
                let etag = self
                    .put(rel, content, &Precondition::IfMatch(theirs.etag))
                    .await?;
                tracing::warn!(
                    path = rel,
                    "conflict: overwrote another writer's blob (on_conflict = overwrite)"
                );
                Ok(Resolution::Overwritten {
                    etag,
                    report: ConflictReport {
                        path: rel.to_string(),
                        action: "overwritten".into(),
                        copy: None,
                    },
                })
            }
            OnConflict::Skip => {
                tracing::warn!(
                    path = rel,
                    "conflict: skipped; the remote keeps the other writer's version"
                );
                Ok(Resolution::Conflict {
                    their_etag: theirs.etag,
                    report: ConflictReport {
                        path: rel.to_string(),
                        action: "skipped".into(),
                        copy: None,
                    },
                    uploaded_copy: false,
                })
            }
        }
    }
}

enum Resolution {
    Uploaded {
        etag: String,
    },
    /// The remote already holds exactly our content (e.g. uploaded before a crash).
    AlreadyThere {
        etag: String,
    },
    /// Theirs stays at the path; ours went to a copy (or nowhere, with `skip`).
    Conflict {
        their_etag: String,
        report: ConflictReport,
        uploaded_copy: bool,
    },
    Overwritten {
        etag: String,
        report: ConflictReport,
    },
}

fn cancelled(opts: &PushOptions) -> bool {
    opts.cancel.as_ref().is_some_and(|c| c.is_cancelled())
}

/// `notes.md` → `notes.conflict-HOST-20261122T101500Z.md` (same directory); copy `n` > 1
/// of the same second gets `-n` after the time.
pub fn conflict_name(rel: &str, host: &str, when: time::OffsetDateTime, n: u32) -> String {
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        when.year(),
        u8::from(when.month()),
        when.day(),
        when.hour(),
        when.minute(),
        when.second()
    );
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (dir, name) = match rel.rfind('/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => ("", rel),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let counter = if n > 1 {
        format!("-{n}")
    } else {
        String::new()
    };
    format!("{dir}{stem}.conflict-{host}-{stamp}{counter}{ext}")
}

fn read_error(e: &std::io::Error) -> String {
    format!("cannot read: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::local::DirectoryRemote;
    use crate::remote::{PutOutcome, RemoteBlob};
    use async_trait::async_trait;

    /// The directory remote, counting writes and running `before_put` (with the number of
    /// earlier writes) as each one starts.
    struct Instrumented {
        inner: DirectoryRemote,
        puts: std::sync::atomic::AtomicU32,
        before_put: Box<dyn Fn(u32) + Send + Sync>,
    }

    impl Instrumented {
        fn new(mirror: &Path, before_put: impl Fn(u32) + Send + Sync + 'static) -> Self {
            Instrumented {
                inner: DirectoryRemote::new(mirror, true),
                puts: Default::default(),
                before_put: Box::new(before_put),
            }
        }
    }

    #[async_trait]
    impl Remote for Instrumented {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn credential_source(&self) -> String {
            self.inner.credential_source()
        }
        async fn put(
            &self,
            name: &str,
            content: &Content,
            p: &Precondition,
            writer: &str,
        ) -> Result<PutOutcome, RemoteError> {
            (self.before_put)(self.puts.fetch_add(1, Ordering::SeqCst));
            self.inner.put(name, content, p, writer).await
        }
        async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
            self.inner.head(name).await
        }
        async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
            self.inner.list().await
        }
    }

    /// One run of the pipeline over `root`, host "h".
    async fn push_once(
        root: &Path,
        filter: &Filter,
        remote: &dyn Remote,
        state: &mut StateIndex,
        opts: &PushOptions,
    ) -> PushReport {
        let ctx = PushContext {
            root,
            filter,
            remote,
            state,
            host: "h",
        };
        run(ctx, opts, &|_| {}).await.unwrap()
    }

    fn options() -> PushOptions {
        PushOptions {
            all: false,
            force: false,
            dry_run: false,
            checksum: false,
            on_conflict: OnConflict::KeepBoth,
            concurrency: 4,
            paths: None,
            retry: RetryPolicy::default(),
            cancel: None,
        }
    }

    #[tokio::test]
    async fn a_batch_naming_a_directory_checks_its_files_against_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for i in 0..5 {
            let p = root.join(format!("entries/n{i}.md"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("{i}")).unwrap();
        }
        let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
        let remote = Instrumented::new(&dir.path().join("mirror"), |_| {});
        let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
        let mut opts = options();
        let first = push_once(&root, &filter, &remote, &mut state, &opts).await;
        assert_eq!(first.uploaded, 5);
        // The watcher saw an event on the directory itself.
        opts.paths = Some(vec!["entries".to_string()]);
        let puts_before = remote.puts.load(Ordering::SeqCst);
        let batch = push_once(&root, &filter, &remote, &mut state, &opts).await;
        assert_eq!((batch.uploaded, batch.unchanged), (0, 5));
        assert_eq!(
            remote.puts.load(Ordering::SeqCst),
            puts_before,
            "no request for files the index knows"
        );
    }

    #[tokio::test]
    async fn a_file_changed_during_upload_stays_dirty_and_is_pushed_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join("n.md");
        std::fs::write(&file, b"original").unwrap();
        let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
        // Someone edits the file while its first upload is in flight.
        let edited = file.clone();
        let remote = Instrumented::new(&dir.path().join("mirror"), move |earlier| {
            if earlier == 0 {
                std::fs::write(&edited, b"edited during upload, longer").unwrap();
            }
        });
        let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
        let first = push_once(&root, &filter, &remote, &mut state, &options()).await;
        assert_eq!(first.uploaded, 1);
        assert_eq!(first.changed_during_upload, vec!["n.md".to_string()]);
        let mirror = dir.path().join("mirror/n.md");
        assert_eq!(std::fs::read(&mirror).unwrap(), b"original");
        // Not recorded as synced: the next pass pushes the new content, without a conflict.
        let second = push_once(&root, &filter, &remote, &mut state, &options()).await;
        assert_eq!(second.uploaded, 1, "{second:?}");
        assert!(second.conflicts.is_empty(), "{second:?}");
        assert!(second.changed_during_upload.is_empty());
        assert_eq!(
            std::fs::read(&mirror).unwrap(),
            b"edited during upload, longer"
        );
        let third = push_once(&root, &filter, &remote, &mut state, &options()).await;
        assert_eq!((third.uploaded, third.unchanged), (0, 1));
    }

    #[tokio::test]
    async fn a_large_file_changed_while_its_blocks_upload_is_neither_stored_nor_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join("big.md");
        std::fs::write(&file, vec![b'a'; 9 * 1024 * 1024]).unwrap();
        let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
        // Someone appends to the file after it was opened, while it is being copied.
        let edited = file.clone();
        let remote = Instrumented::new(&dir.path().join("mirror"), move |earlier| {
            if earlier == 0 {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&edited)
                    .unwrap();
                f.write_all(b"appended").unwrap();
            }
        });
        let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
        let first = push_once(&root, &filter, &remote, &mut state, &options()).await;
        assert_eq!(first.changed_during_upload, vec!["big.md".to_string()]);
        assert_eq!(first.uploaded, 0, "{first:?}");
        assert!(first.failed.is_empty(), "{first:?}");
        let mirror = dir.path().join("mirror/big.md");
        assert!(!mirror.exists(), "a torn copy was stored");
        assert!(state.load().unwrap().is_empty(), "not recorded as synced");
        let second = push_once(&root, &filter, &remote, &mut state, &options()).await;
        assert_eq!(second.uploaded, 1, "{second:?}");
        assert_eq!(
            std::fs::read(&mirror).unwrap(),
            std::fs::read(&file).unwrap()
        );
    }

    #[tokio::test]
    async fn a_file_deleted_or_swapped_for_a_symlink_after_the_scan_is_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        for name in ["a.md", "b.md", "c.md"] {
            std::fs::write(root.join(name), name).unwrap();
        }
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "secret").unwrap();
        let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
        let (b, c) = (root.join("b.md"), root.join("c.md"));
        let remote = Instrumented::new(&dir.path().join("mirror"), move |earlier| {
            if earlier == 0 {
                std::fs::remove_file(&b).unwrap();
                std::fs::remove_file(&c).unwrap();
                std::os::unix::fs::symlink(&secret, &c).unwrap();
            }
        });
        let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
        let opts = PushOptions {
            concurrency: 1,
            ..options()
        };
        let report = push_once(&root, &filter, &remote, &mut state, &opts).await;
        assert!(report.failed.is_empty(), "{report:?}");
        assert!(report.is_clean());
        assert_eq!(report.uploaded, 1);
        assert!(
            !dir.path().join("mirror/c.md").exists(),
            "the link was not followed"
        );
    }

    #[test]
    fn conflict_names_keep_directory_and_extension() {
        let when = time::macros::datetime!(2026-11-22 10:15:00 UTC);
        assert_eq!(
            conflict_name("notes.md", "laptop", when, 1),
            "notes.conflict-laptop-20261122T101500Z.md"
        );
        assert_eq!(
            conflict_name("events/20261122.jsonl", "my host.local", when, 1),
            "events/20261122.conflict-my_host_local-20261122T101500Z.jsonl"
        );
        assert_eq!(
            conflict_name("dir.d/README", "h", when, 1),
            "dir.d/README.conflict-h-20261122T101500Z"
        );
        assert_eq!(
            conflict_name("d/n.md", "h", when, 2),
            "d/n.conflict-h-20261122T101500Z-2.md"
        );
        assert_eq!(
            conflict_name("d.x/README", "h", when, 3),
            "d.x/README.conflict-h-20261122T101500Z-3"
        );
        assert_eq!(
            conflict_name(".hidden", "h", when, 1),
            ".hidden.conflict-h-20261122T101500Z"
        );
    }
}
