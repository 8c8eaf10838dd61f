//! The push pipeline: scan → plan against the state index → upload → commit.
//!
//! Every upload goes through [`run`], whoever asks (the `push` command, the daemon's
//! worker). One file per stage module: [`plan`] (scan, list, decide), [`upload`] (open,
//! send, resolve conflicts), [`commit`] (count outcomes, write the index in batches) and
//! [`report`] (what a run did, why it stopped). Uploads run with bounded concurrency (for a
//! remote across a network, the limit its [`Limiter`](crate::remote::limit::Limiter)
//! adapts to the path); each
//! carries its MD5 and a precondition, transient failures are retried by [`RetryPolicy`],
//! a conflict goes to the configured policy, and one file's failure never stops the
//! others. Only a refusal of the credentials or an unreachable service stops the run,
//! since every further request would fail the same way.

mod commit;
mod delete;
mod events_merge;
mod flags;
mod plan;
mod report;
mod upload;

pub use delete::mass_delete_threshold;
pub use flags::PushFlags;
pub use report::{
    ConflictAction, ConflictReport, FileFailure, PlannedUpload, PushError, PushEvent, PushMode,
    PushReport, auth_hint, permission_name, refusal_hint,
};
pub use upload::conflict_name;

use crate::config::{Deletes, OnConflict, SyncConfig};
use crate::filter::Filter;
use crate::remote::Remote;
use crate::remote::content::MemoryBudget;
use crate::remote::retry::RetryPolicy;
use crate::state::StateIndex;
use futures::StreamExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// One push: the flags that asked for it (a command line, a `ctl push`, the worker's own
/// passes) and what the configuration and the caller add.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub flags: PushFlags,
    /// `flags.on_conflict`, else `sync.on_conflict`; in two-way mode `skip`: the pull that
    /// follows settles a path another machine changed too (a sync-conflict file beside it).
    pub on_conflict: OnConflict,
    /// What a file deleted locally does on the remote (`sync.deletes`).
    pub deletes: Deletes,
    /// `sync.mode = "two-way"`: what the remote deleted is the pull's to delete here.
    pub two_way: bool,
    pub concurrency: usize,
    /// Only these relative paths (a daemon batch); `None` scans the whole root.
    pub paths: Option<Vec<String>>,
    pub retry: RetryPolicy,
    /// Stops starting new uploads (daemon shutdown); those in flight finish.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Two-way: the remote's change mark as the daemon read it before its last full pull
    /// (see [`crate::remote::change_mark::bump`]); `None` moves the mark unconditionally.
    pub generation_seen: Option<crate::remote::change_mark::Generation>,
}

impl PushOptions {
    /// `flags` with the `[sync]` settings: the whole root, the default retries, no cancel.
    pub fn new(flags: PushFlags, sync: &SyncConfig) -> Self {
        PushOptions {
            flags,
            on_conflict: flags.on_conflict.unwrap_or(match sync.mode {
                crate::config::SyncMode::Backup => sync.on_conflict,
                crate::config::SyncMode::TwoWay => OnConflict::Skip,
            }),
            deletes: sync.deletes,
            two_way: sync.mode == crate::config::SyncMode::TwoWay,
            concurrency: sync.concurrency,
            paths: None,
            retry: RetryPolicy::default(),
            cancel: None,
            generation_seen: None,
        }
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
        mode: if opts.flags.all {
            PushMode::All
        } else {
            PushMode::Incremental
        },
        dry_run: opts.flags.dry_run,
        force: opts.flags.force,
        ..Default::default()
    };

    let mut scanned = plan::scan(root, filter, state, remote, opts, &mut report)?;
    if !opts.flags.dry_run {
        events_merge::merge_shrunk(root, &mut scanned.files, &scanned.index, remote, opts.retry)
            .await;
    }
    let candidates = delete::candidates(root, &scanned, state, opts, &report)?;
    let mut deletes = candidates.now;
    let root_now = delete::root_identity(root);
    let root_before = state.root_identity()?;
    let mut held = false;
    if !candidates.all_gone.is_empty() {
        let guard = delete::GuardInput {
            gone: candidates.all_gone.len() as u64,
            rows: state.count()?,
            recent: state.deletes_since_window(time::OffsetDateTime::now_utc().unix_timestamp())?,
            root_replaced: root_before.is_some() && root_now.is_some() && root_before != root_now,
        };
        if let Some(why) = delete::hold_reason(guard, opts) {
            tracing::warn!(
                files = guard.gone,
                "deletes held: {why}; push with --allow-deletes to carry them out"
            );
            held = true;
            deletes.clear();
            report.held_deletes = candidates.all_gone;
            report.held_reason = Some(why);
        }
    }
    // The root's identity is taken as the new normal only by a pass whose deletes went
    // through (or had none): a replaced root keeps its deletes held until allowed.
    if !held
        && !opts.flags.dry_run
        && let Some((dev, ino)) = root_now
        && root_before != root_now
        && let Err(e) = state.set_root_identity(dev, ino)
    {
        // A read-only index fails its first real write with the fix; a pass with nothing
        // to record must not fail on this alone.
        tracing::debug!("cannot record the root's identity: {e}");
    }
    let listing = plan::list(remote, opts, filter, &scanned.files, &mut report).await?;
    // Every file is read below this handle, never through a symlink.
    let root_dir = match crate::fsutil::Beneath::open(root) {
        Ok(dir) => Arc::new(dir),
        Err(e) => {
            for file in scanned.files {
                report.failed.push(FileFailure {
                    path: file.rel,
                    error: format!("cannot open the journal root {}: {e}", root.display()),
                    transient: crate::fsutil::is_transient_io(&e),
                });
            }
            return Ok(report.finished(started));
        }
    };
    let writer = state.writer_id().to_string();
    let rules = crate::plan::Rules {
        force: opts.flags.force,
        revisit_conflicts: opts.on_conflict == OnConflict::Overwrite,
        writer: &writer,
        checksum: opts.flags.checksum,
        two_way: opts.two_way,
    };
    let plan::Plan { records, jobs } = plan::decide_all(
        scanned,
        listing.as_ref(),
        &rules,
        &root_dir,
        opts,
        &mut report,
    );
    if opts.flags.dry_run {
        plan::report_dry_run(jobs, opts, &mut report);
        report.would_delete = deletes.into_iter().map(|(rel, _)| rel).collect();
        return Ok(report.finished(started));
    }
    state.commit(&records)?;
    progress(PushEvent::Planned {
        files: jobs.len() as u64,
        bytes: jobs.iter().map(|j| j.file.size).sum(),
    });

    let abort = AtomicBool::new(false);
    let budget = MemoryBudget::default();
    if let Some(limiter) = remote.features().limiter {
        limiter.begin_run();
    }
    let uploader = upload::Uploader {
        budget: &budget,
        root_dir: &root_dir,
        root,
        remote,
        retry: opts.retry,
        on_conflict: opts.on_conflict,
        force: opts.flags.force,
        host,
        writer: &writer,
        abort: &abort,
        cancel: opts.cancel.as_ref(),
        progress,
    };
    // Two-way: sync-conflict files go up before the rest, so a machine that sees a path's
    // new version also sees its conflict file in the same listing and writes a conflict of
    // its own into that one instead of beside it (one conflict file per path).
    let (first, rest): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| {
        opts.two_way && crate::names::parse_sync_conflict(&job.file.rel).is_some()
    });
    let mut stopped = commit::Stopped::default();
    for phase in [first, rest] {
        if phase.is_empty() {
            continue;
        }
        if stopped.auth.is_some() || stopped.unreachable.is_some() || cancelled(opts) {
            stopped.not_started += phase.len() as u64;
            continue;
        }
        let outcomes = futures::stream::iter(phase)
            .map(|job| uploader.upload(job))
            .buffer_unordered(opts.concurrency.max(1));
        let more = commit::collect(Box::pin(outcomes), state, &mut report, progress).await?;
        stopped.auth = stopped.auth.or(more.auth);
        stopped.unreachable = stopped.unreachable.or(more.unreachable);
        stopped.not_started += more.not_started;
    }
    if stopped.auth.is_none() && stopped.unreachable.is_none() && !cancelled(opts) {
        let deleter = delete::Deleter {
            remote,
            retry: opts.retry,
            writer: &writer,
            concurrency: opts.concurrency,
            refused: Default::default(),
        };
        deleter
            .run(deletes, opts.flags.allow_deletes, state, &mut report)
            .await?;
    }
    // Two-way: tell pollers the remote changed, after the changes (see remote::change_mark).
    if opts.two_way && (report.uploaded > 0 || !report.deleted.is_empty()) {
        match crate::remote::change_mark::bump(remote, &writer, opts.generation_seen.as_ref()).await
        {
            Ok(now) => report.generation = now,
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark the remote as changed; other machines see it at their next full pull")
            }
        }
    }
    report.concurrency = remote.features().limiter.map(|l| l.run_report());
    let mut report = report.finished(started);
    report.created_container = remote.features().created.and_then(|c| c.take());
    if let Some(detail) = stopped.auth {
        return Err(report::refused(remote, detail, report));
    }
    if let Some(detail) = stopped.unreachable {
        return Err(PushError::Unreachable {
            remote: remote.describe(),
            detail,
            pending: stopped.not_started + report.failed.len() as u64,
            report: Box::new(report),
        });
    }
    Ok(report)
}

fn cancelled(opts: &PushOptions) -> bool {
    opts.cancel.as_ref().is_some_and(|c| c.is_cancelled())
}

#[cfg(test)]
mod tests;
