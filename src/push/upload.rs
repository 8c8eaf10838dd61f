//! The upload stage: one job at a time per slot, each file opened once (never through a
//! symlink), sent with its MD5 and precondition, retried when that can help, and sent to
//! the conflict policy when the blob is not the version we expected.

use super::plan::{Job, JobAction};
use super::report::{ConflictAction, ConflictReport, PushEvent, read_error};
use crate::config::OnConflict;
use crate::fsutil::Beneath;
use crate::remote::content::{Content, MemoryBudget, OpenError};
use crate::remote::retry::RetryPolicy;
use crate::remote::{Precondition, Put, Remote, RemoteError};
use crate::state::{IndexEntry, Record};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) enum Outcome {
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

pub(super) struct Uploader<'a> {
    pub budget: &'a MemoryBudget,
    pub root_dir: &'a Arc<Beneath>,
    pub root: &'a Path,
    pub remote: &'a dyn Remote,
    pub retry: RetryPolicy,
    pub on_conflict: OnConflict,
    pub force: bool,
    pub host: &'a str,
    pub writer: &'a str,
    /// Set by the first upload that finds the remote refusing or unreachable.
    pub abort: &'a AtomicBool,
    pub cancel: Option<&'a tokio_util::sync::CancellationToken>,
    pub progress: &'a (dyn Fn(PushEvent) + Send + Sync),
}

impl Uploader<'_> {
    pub async fn upload(&self, job: Job) -> Outcome {
        // Wait for room under the remote's concurrency limit before holding anything (an
        // open file, memory): a job never waits for its place while holding what a job in
        // flight may need.
        let _slot = match self.remote.features().limiter {
            Some(limiter) => Some(limiter.admit().await),
            None => None,
        };
        if self.abort.load(Ordering::Relaxed) || self.cancel.is_some_and(|c| c.is_cancelled()) {
            return Outcome::NotStarted;
        }
        let rel = job.file.rel.clone();
        let abs = self.root.join(&rel);
        let content = match Content::open(self.root_dir, &rel, self.budget, job.file.size).await {
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
            JobAction::Put {
                precondition,
                reason,
            } => {
                // `--force` sending the very bytes the remote version has (as the index
                // knows it) replaces nothing worth keeping.
                let same_bytes = *reason == crate::plan::UploadReason::Forced
                    && job.known_md5.is_some()
                    && content.inline().is_some()
                    && content.known_md5() == job.known_md5;
                match self
                    .put_keeping(&rel, &content, precondition, !same_bytes)
                    .await
                {
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
        self.put_keeping(name, content, precondition, true).await
    }

    /// [`put`](Self::put), keeping the replaced version in history only if `keep`.
    async fn put_keeping(
        &self,
        name: &str,
        content: &Content,
        precondition: &Precondition,
        keep: bool,
    ) -> Result<String, RemoteError> {
        // The version about to be replaced is kept first, conditioned on its ETag; if
        // another writer slips in between, the put's own If-Match fails and the conflict
        // path takes over: nothing is lost either way.
        if let (Precondition::IfMatch(etag), true) = (precondition, keep) {
            let kept = crate::history::version_name(name, etag, self.writer);
            self.retried(name, || self.remote.preserve(name, etag, &kept))
                .await?;
        }
        // Retries inside the one put (a large file's blocks) are reported as they happen too.
        let on_retry = |e: &RemoteError| self.report_retry(name, e);
        self.retried(name, || {
            self.remote.put_observed(Put {
                name,
                content,
                precondition,
                writer: self.writer,
                host: self.host,
                on_retry: &on_retry,
                seal: None,
            })
        })
        .await
        .map(|o| o.etag)
    }

    /// `op` under the retry policy; each retry is reported as it happens.
    async fn retried<T, F, Fut>(&self, path: &str, op: F) -> Result<T, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RemoteError>>,
    {
        self.retry
            .run_observed(op, |e| self.report_retry(path, e))
            .await
    }

    fn report_retry(&self, path: &str, error: &RemoteError) {
        (self.progress)(PushEvent::Retrying {
            path: path.to_string(),
            error: error.to_string(),
        })
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
        let current = self.retried(rel, || self.remote.head(rel)).await?;
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
                // The same bytes: nothing to keep in history.
                let precondition = Precondition::IfMatch(theirs.etag.clone());
                let etag = self.put_keeping(rel, content, &precondition, false).await?;
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
                        action: ConflictAction::KeptBoth,
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
                        action: ConflictAction::Overwritten,
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
                        action: ConflictAction::Skipped,
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
