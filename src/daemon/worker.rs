//! The sync worker: the one owner of the push pipeline, the state index and its part of
//! the status ([`WorkerStatus`]; `status.rs` projects `ctl status` from it).
//!
//! Everything that wants a push sends a [`WorkerCmd`]: the queue (batches of dirty
//! paths), the watcher (rescans), the control socket (`ctl push`, pause, …) and the timers.
//! One push runs at a time; commands that arrive meanwhile wait in the channel, and
//! identical `ctl push` requests waiting together run once. When the remote cannot be
//! reached the dirty set is kept and retried with capped, jittered back-off — the worker
//! sleeps in between, it never spins.

use super::watch::RescanReason;
use crate::config::Config;
use crate::config::SyncMode;
use crate::filter::Filter;
use crate::pull::{PullContext, PullOptions, PullReport};
use crate::push::{self, PushContext, PushEvent, PushFlags, PushOptions, PushReport};
use crate::remote::Remote;
use crate::remote::retry::RetryPolicy;
use crate::state::{StateError, StateIndex};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
// Tokio's clock, so timers follow a paused clock in tests.
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How soon a pull that left a skipped path unsettled is tried again (two-way mode).
const UNSETTLED_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two attempts while the remote is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often a partly-watched tree is scanned.
pub const LIMITED_SCAN_INTERVAL: Duration = Duration::from_secs(60);

/// Everything one configuration needs to push; rebuilt whole on reload.
pub struct Setup {
    pub config: Config,
    pub filter: Filter,
    pub remote: Arc<dyn Remote>,
    pub state: StateIndex,
    /// The index could not be opened for writing: `state` is an empty stand-in, and the
    /// worker reopens the real one before every attempt (no push runs on the stand-in).
    pub index_read_only: bool,
    /// What the setup found worth saying (shown in status with the verdict).
    pub warnings: Vec<String>,
}

/// A failed push as the control socket reports it.
#[derive(Debug, Clone)]
pub struct PushFailure {
    pub code: crate::exit::ExitCode,
    pub message: String,
    /// What was done before the run stopped, when anything was.
    pub report: Option<PushReport>,
}

pub enum WorkerCmd {
    /// Paths the queue found ready.
    Batch(Vec<String>),
    Rescan(RescanReason),
    Push {
        request: PushFlags,
        progress: Option<mpsc::UnboundedSender<PushEvent>>,
        reply: Option<oneshot::Sender<Result<PushReport, PushFailure>>>,
    },
    /// Bring the remote's changes down (two-way mode): `ctl pull`.
    Pull {
        reply: Option<oneshot::Sender<Result<PullReport, PushFailure>>>,
    },
    Pause,
    Resume,
    Reload {
        setup: Box<Setup>,
        watch_limited: Option<String>,
    },
    /// The watcher covers only part of the tree (or all of it again).
    WatchLimited(Option<String>),
}

pub use crate::protocol::{LastPush, State, WorkerStatus};

/// Failed paths named in the status.
const FAILED_SAMPLE: usize = 5;

/// A path the last attempts could not push.
#[derive(Debug, Clone)]
struct FailedPath {
    error: String,
}

pub struct Worker {
    setup: Setup,
    host: String,
    status: watch::Sender<WorkerStatus>,
    /// Dirty paths not yet pushed (from batches that could not run or failed transiently).
    pending: BTreeSet<String>,
    full_pass_pending: bool,
    paused: bool,
    failures_in_a_row: u32,
    next_retry: Option<Instant>,
    next_scan: Instant,
    cancel: CancellationToken,
    backlog: VecDeque<WorkerCmd>,
    /// The last push failed because the state index is read-only: reopen it before the
    /// next attempt (a connection opened read-only stays so after a chmod).
    index_read_only: bool,
    /// Paths that failed and are retried: never forgotten until pushed or gone.
    failed: BTreeMap<String, FailedPath>,
    /// The back-off running is for files that failed (the remote answers), not an outage.
    retrying_files: bool,
    /// The credentials may not delete: automatic passes leave deletes alone until a reload
    /// (or an explicit push) tries again, so no retry makes one more history copy.
    deletes_refused: bool,
    /// The next full pass compares with the remote's listing (set at start-up, by the
    /// periodic rescan and by a reload; cleared by a pass that listed).
    verify_due: bool,
    /// Damaged blobs the last listing found, less those pushed since (shown in status).
    corrupt: BTreeSet<String>,
    /// Two-way mode: when the next pull is due (`None` in backup mode).
    next_pull: Option<Instant>,
    /// Two-way mode: paths a push skipped because another machine changed them too, until
    /// a pull settles them (a sync-conflict file, or their version downloaded). They count
    /// as waiting: the journal is not in sync while one is left.
    unsettled: BTreeSet<String>,
    /// Two-way mode: the remote's change mark as read before the last full pull that went
    /// through (`None`: no such pull yet, the next one lists), and when that pull ran.
    generation_seen: Option<crate::remote::change_mark::Generation>,
    full_pull_at: Option<Instant>,
}

impl Worker {
    pub fn new(
        setup: Setup,
        host: String,
        status: watch::Sender<WorkerStatus>,
        cancel: CancellationToken,
    ) -> Self {
        let next_scan = Instant::now() + setup.config.sync.rescan_interval;
        let index_read_only = setup.index_read_only;
        let mut worker = Worker {
            setup,
            host,
            status,
            pending: BTreeSet::new(),
            full_pass_pending: false,
            paused: false,
            failures_in_a_row: 0,
            next_retry: None,
            next_scan,
            cancel,
            backlog: VecDeque::new(),
            index_read_only,
            failed: BTreeMap::new(),
            retrying_files: false,
            deletes_refused: false,
            verify_due: true,
            corrupt: BTreeSet::new(),
            next_pull: None,
            unsettled: BTreeSet::new(),
            generation_seen: None,
            full_pull_at: None,
        };
        worker.schedule_pull_now();
        worker.publish_setup();
        worker
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<WorkerCmd>) {
        loop {
            if let Some(cmd) = self.backlog.pop_front() {
                self.handle(cmd, &mut rx).await;
                continue;
            }
            let retry = self.next_retry.filter(|_| !self.paused);
            let pull = self.next_pull.filter(|_| !self.paused);
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd, &mut rx).await,
                    None => break,
                },
                // Before the comparison with the remote: in two-way mode what another
                // machine changed comes down first, so the comparison never takes it for
                // something to repair.
                _ = sleep_until(pull), if pull.is_some() => self.pull(None).await,
                _ = std::future::ready(()), if self.verify_ready() => self.attempt().await,
                _ = sleep_until(retry), if retry.is_some() => {
                    self.next_retry = None;
                    // The failed paths' turn (they wait for the back-off; new changes do not).
                    let failed: Vec<String> = self.failed.keys().cloned().collect();
                    self.pending.extend(failed);
                    self.attempt().await;
                }
                _ = tokio::time::sleep_until(self.next_scan) => {
                    let reason = if self.status.borrow().watch_limited.is_some() {
                        RescanReason::WatchLimited
                    } else {
                        RescanReason::Scheduled
                    };
                    self.handle(WorkerCmd::Rescan(reason), &mut rx).await;
                }
            }
        }
    }

    async fn handle(&mut self, cmd: WorkerCmd, rx: &mut mpsc::Receiver<WorkerCmd>) {
        match cmd {
            WorkerCmd::Batch(paths) => {
                self.take_batch(paths);
                // Batches that queued up behind a push are one batch now.
                self.absorb_queued_batches(rx);
                self.attempt_unless_backing_off().await;
            }
            WorkerCmd::Rescan(reason) => {
                self.full_pass_pending = true;
                if matches!(reason, RescanReason::Scheduled | RescanReason::Startup) {
                    self.verify_due = true;
                }
                self.schedule_next_scan();
                self.status.send_modify(|s| {
                    s.rescans += 1;
                    if reason == RescanReason::Overflow || reason == RescanReason::WatcherError {
                        s.watcher_overflows += 1;
                    }
                });
                self.attempt_unless_backing_off().await;
            }
            WorkerCmd::Push {
                request,
                progress,
                reply,
            } => {
                let mut waiters = vec![(progress, reply)];
                self.absorb_identical_pushes(request, rx, &mut waiters);
                self.explicit_push(request, waiters).await;
            }
            WorkerCmd::Pull { reply } => self.pull(reply).await,
            WorkerCmd::Pause => {
                self.paused = true;
                self.publish_state();
            }
            WorkerCmd::Resume => {
                self.paused = false;
                self.publish_state();
                self.attempt().await;
            }
            WorkerCmd::Reload {
                setup,
                watch_limited,
            } => {
                self.index_read_only = setup.index_read_only;
                self.setup = *setup;
                self.publish_setup();
                self.schedule_pull_now();
                self.status.send_modify(|s| s.watch_limited = watch_limited);
                self.schedule_next_scan();
                self.full_pass_pending = true;
                // New credentials (or a fixed remote) are tried at once, not after the
                // back-off the old ones earned; refused deletes get their one new try.
                self.next_retry = None;
                self.failures_in_a_row = 0;
                self.deletes_refused = false;
                self.verify_due = true;
                self.attempt().await;
            }
            WorkerCmd::WatchLimited(limited) => {
                self.status.send_modify(|s| s.watch_limited = limited);
                self.schedule_next_scan();
            }
        }
    }

    /// A batch from the queue joins the pending set (and stops counting as handed over).
    fn take_batch(&mut self, paths: Vec<String>) {
        let n = paths.len() as u64;
        self.pending.extend(paths);
        let waiting = self.waiting_count();
        self.status.send_modify(|s| {
            s.taken_from_queue += n;
            s.waiting_paths = waiting;
            s.pending_since_at.get_or_insert_with(Instant::now);
        });
    }

    /// Merge batches already waiting in the channel; keep anything else for later, in order.
    fn absorb_queued_batches(&mut self, rx: &mut mpsc::Receiver<WorkerCmd>) {
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                WorkerCmd::Batch(paths) => self.take_batch(paths),
                other => {
                    self.backlog.push_back(other);
                    break;
                }
            }
        }
    }

    /// `ctl push` requests identical to `request` that are already waiting run with it.
    fn absorb_identical_pushes(
        &mut self,
        request: PushFlags,
        rx: &mut mpsc::Receiver<WorkerCmd>,
        waiters: &mut Vec<Waiter>,
    ) {
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                WorkerCmd::Push {
                    request: r,
                    progress,
                    reply,
                } if r == request => waiters.push((progress, reply)),
                WorkerCmd::Batch(paths) => self.take_batch(paths),
                other => self.backlog.push_back(other),
            }
        }
    }

    fn schedule_next_scan(&mut self) {
        let mut every = self.setup.config.sync.rescan_interval;
        if self.status.borrow().watch_limited.is_some() {
            every = every.min(LIMITED_SCAN_INTERVAL);
        }
        self.next_scan = Instant::now() + every;
    }

    /// Paths waiting in the worker: pending, and failed ones waiting for their retry.
    fn waiting_count(&self) -> usize {
        let failed_only = self
            .failed
            .keys()
            .filter(|p| !self.pending.contains(*p))
            .count();
        let unsettled_only = self
            .unsettled
            .iter()
            .filter(|p| !self.pending.contains(*p) && !self.failed.contains_key(*p))
            .count();
        self.pending.len() + failed_only + unsettled_only
    }

    async fn attempt_unless_backing_off(&mut self) {
        // Backing off for a few failed files (the remote answers) holds back only those:
        // new changes go now.
        if self.next_retry.is_none() || self.retrying_files {
            self.attempt().await;
        } else {
            self.publish_state();
        }
    }

    /// Push what is pending (a full pass if one was asked for), unless paused.
    async fn attempt(&mut self) {
        // A start-up pass runs before the remote has answered, without a listing (so an
        // unreachable remote shows as the uploads it holds up); once it went through, the
        // pass that compares with the remote follows, after any command already queued
        // (a `ctl push --all` among them does the comparison itself).
        if self.attempt_once().await {
            self.full_pass_pending = true;
        }
    }

    /// The comparison with the remote is due and nothing stands in its way.
    fn verify_ready(&self) -> bool {
        self.full_pass_pending
            && self.verify_due
            && self.next_retry.is_none()
            && !self.paused
            // A pull that is due goes first (two-way mode).
            && self.next_pull.is_none_or(|at| at > Instant::now())
    }

    /// One attempt; whether the comparison with the remote is still due after a full pass
    /// that went through without it.
    async fn attempt_once(&mut self) -> bool {
        if self.paused || (self.pending.is_empty() && !self.full_pass_pending) {
            self.publish_state();
            return false;
        }
        let paths: Vec<String> = std::mem::take(&mut self.pending).into_iter().collect();
        // A file with more than one link changes under every one of its names: a full pass
        // compares them all (a batch would push only the name that was written).
        let full = self.full_pass_pending || self.has_hard_links(&paths);
        self.full_pass_pending = false;
        // Still pending until the push is done: status counts them as in flight.
        let in_flight = paths.len();
        let failed_waiting = if full {
            0
        } else {
            self.failed
                .keys()
                .filter(|p| paths.binary_search(p).is_err())
                .count()
        };
        self.status.send_modify(|s| {
            s.waiting_paths = failed_waiting;
            s.in_flight_paths = in_flight;
            s.full_pass_running = full;
            if in_flight > 0 {
                s.pending_since_at.get_or_insert_with(Instant::now);
            }
        });
        let request = PushFlags::default();
        let result = self
            .run_push(request, (!full).then(|| paths.clone()), false, &|_| {})
            .await;
        match result {
            Ok(report) => {
                self.record_failures(&report, (!full).then_some(paths.as_slice()));
                self.after_report(&report);
                full && report.mode != crate::push::PushMode::All && self.verify_due
            }
            Err(e) => {
                // Keep everything for the next attempt.
                if full {
                    self.full_pass_pending = true;
                }
                self.pending.extend(paths);
                self.retrying_files = false;
                self.failed(e.message);
                false
            }
        }
    }

    async fn explicit_push(&mut self, request: PushFlags, waiters: Vec<Waiter>) {
        let senders: Vec<_> = waiters.iter().filter_map(|(p, _)| p.clone()).collect();
        let progress = move |event: PushEvent| {
            for s in &senders {
                let _ = s.send(event.clone());
            }
        };
        // An explicit push retries at once, offline or not.
        self.next_retry = None;
        let result = self.run_push(request, None, true, &progress).await;
        if !request.dry_run {
            match &result {
                Ok(report) => {
                    // A full pass: what was pending is pushed, or failed and kept.
                    self.full_pass_pending = false;
                    self.pending.clear();
                    self.record_failures(report, None);
                    self.after_report(report);
                }
                Err(e) => {
                    self.full_pass_pending = true;
                    self.retrying_files = false;
                    self.failed(e.message.clone());
                }
            }
        } else {
            self.publish_state();
        }
        for (_, reply) in waiters {
            if let Some(reply) = reply {
                let _ = reply.send(result.clone());
            }
        }
        // Whatever the explicit push left pending goes now.
        if self.next_retry.is_none() && (!self.pending.is_empty() || self.full_pass_pending) {
            self.attempt().await;
        }
    }

    async fn run_push(
        &mut self,
        request: PushFlags,
        paths: Option<Vec<String>>,
        explicit: bool,
        progress: &(dyn Fn(PushEvent) + Send + Sync),
    ) -> Result<PushReport, PushFailure> {
        let full_pass = paths.is_none();
        self.status.send_modify(|s| {
            s.state = State::Pushing;
            s.full_pass_running = full_pass;
        });
        self.sd_status();
        if self.index_read_only
            && let Err(e) = self.reopen_index()
        {
            tracing::warn!(error = %e, "push not started");
            return Err(PushFailure {
                code: crate::exit::USAGE,
                message: e.to_string(),
                report: None,
            });
        }
        let full = paths.is_none();
        if full && !request.dry_run {
            // What a restore or `conflicts --fetch` that died left in the journal.
            crate::restore::temp::sweep_root(&self.setup.config.root);
        }
        // A `ctl push` (not the worker's own passes) tries refused deletes again.
        let deletes_tried = !self.deletes_refused || explicit;
        let list_remote =
            full && !explicit && self.verify_due && self.status.borrow().remote_reached;
        let mut options = PushOptions::new(request, &self.setup.config.sync);
        options.generation_seen = self.generation_seen.clone();
        // The worker's start-up and periodic full passes compare with the remote's
        // listing (once it has answered): a blob deleted or changed behind our back is
        // repaired or reported, never "backed up" on the index's word alone.
        options.flags.all |= list_remote;
        // Paths the watcher saw written are hashed whatever their stat says: a write can
        // put the mtime back.
        options.flags.checksum |= paths.is_some();
        if self.deletes_refused && !explicit {
            options.deletes = crate::config::Deletes::Keep;
        }
        options.paths = paths;
        options.cancel = Some(self.cancel.clone());
        let ctx = PushContext {
            root: &self.setup.config.root,
            filter: &self.setup.filter,
            remote: self.setup.remote.as_ref(),
            state: &mut self.setup.state,
            host: &self.host,
        };
        // Once planned, what is in flight is what is still to upload (a full pass included).
        let status = &self.status;
        // Paths uploaded that a listing had found damaged: repaired by this push.
        let known_corrupt = &self.corrupt;
        let repaired = std::sync::Mutex::new(Vec::new());
        let counting = |event: PushEvent| {
            if let PushEvent::Uploaded { path, .. } = &event
                && known_corrupt.contains(path)
                && let Ok(mut repaired) = repaired.lock()
            {
                repaired.push(path.clone());
            }
            match &event {
                PushEvent::Planned { files, .. } => {
                    let n = *files as usize;
                    status.send_modify(|s| s.in_flight_paths = n);
                }
                PushEvent::Uploaded { .. } | PushEvent::Conflict { .. } => {
                    status.send_modify(|s| {
                        s.in_flight_paths = s.in_flight_paths.saturating_sub(1);
                        // Requests go through again.
                        s.retrying = None;
                        s.retrying_since_unix = None;
                    });
                }
                PushEvent::Retrying { error, .. } => {
                    // Said at the first failure that is tried again (a timeout, a 503),
                    // not minutes later when the retries run out.
                    status.send_modify(|s| {
                        let since = *s.retrying_since_unix.get_or_insert_with(unix_now);
                        s.retrying = Some(format!(
                            "retrying since {}: {error}",
                            crate::verdict::wall_clock(since, unix_now())
                        ));
                    });
                }
                _ => {}
            }
            progress(event);
        };
        let mut result = push::run(ctx, &options, &counting).await;
        // A push that sent nothing never asked the remote: it is not a success until the
        // remote has answered once.
        if !request.dry_run && !self.status.borrow().remote_reached {
            result = super::reach::confirm(self.setup.remote.as_ref(), result).await;
        }
        // History retention: at most once a day, after a full pass that went through.
        if full && !request.dry_run && result.as_ref().is_ok_and(|r| r.is_clean()) {
            let config = &self.setup.config;
            if let Some(pruned) = crate::history::prune_if_due(
                self.setup.remote.as_ref(),
                config.state_dir(),
                config.sync.keep_versions_days,
            )
            .await
                && pruned.removed > 0
            {
                tracing::info!(
                    removed = pruned.removed,
                    bytes = pruned.removed_bytes,
                    "pruned old versions from the history"
                );
            }
        }
        if let Ok(r) = &result
            && !r.dry_run
        {
            if deletes_tried {
                self.deletes_refused = !r.refused_deletes.is_empty();
            }
            if request.all || list_remote {
                self.verify_due = false;
            }
        }
        for path in repaired.into_inner().unwrap_or_default() {
            self.corrupt.remove(&path);
        }
        if let Ok(r) = &result
            && r.mode == crate::push::PushMode::All
        {
            if r.dry_run {
                // A dry run repairs nothing: what it saw stays damaged.
                self.corrupt.extend(r.corrupt.iter().cloned());
            } else {
                // A listing sees every damaged blob there is.
                self.corrupt = r.corrupt.iter().cloned().collect();
            }
        }
        let corrupt = self.corrupt.len();
        let corrupt_sample: Vec<String> = self.corrupt.iter().take(5).cloned().collect();
        let files_in_index = self.setup.state.count().unwrap_or(0);
        let conflicts = self.setup.state.conflict_paths().map_or(0, |c| c.len());
        // Files pushed before that the rules now exclude: on the remote, no longer kept up.
        let excluded = full.then(|| {
            let mut rows: Vec<String> = (self.setup.state.load().unwrap_or_default())
                .into_keys()
                .filter(|rel| !self.setup.filter.accepts_path(rel))
                .collect();
            rows.sort();
            rows
        });
        let reach = super::reach::Reach::of(&result, request.dry_run);
        let (report, outcome) = match result {
            Ok(report) => (Some(report.clone()), Ok(report)),
            Err(e) => {
                self.index_read_only = matches!(
                    e,
                    push::PushError::State(StateError::ReadOnly { .. } | StateError::Other { .. })
                );
                let (code, report) = (e.exit_code(), e.partial_report().cloned());
                let message = e.to_string();
                tracing::warn!(error = %message, "push failed");
                (
                    report.clone(),
                    Err(PushFailure {
                        code,
                        message,
                        report,
                    }),
                )
            }
        };
        if let Some(report) = &report {
            for f in &report.failed {
                tracing::warn!(path = %f.path, error = %f.error, "file not pushed");
            }
            for c in &report.conflicts {
                tracing::warn!(path = %c.path, action = %c.action, copy = ?c.copy, "conflict");
            }
            for path in &report.repaired_corrupt {
                tracing::info!(%path, "repaired a damaged copy on the remote from the local file (the damaged copy kept in the history)");
            }
            for path in &report.corrupt {
                tracing::warn!(%path, "the copy on the remote is damaged (its bytes no longer match the MD5 written with it) and was not repaired");
            }
            if let Some(container) = &report.created_container {
                tracing::info!(%container, "created container {container} on the remote");
            }
            if report.uploaded > 0 {
                tracing::info!(
                    uploaded = report.uploaded,
                    bytes = report.uploaded_bytes,
                    ms = report.duration_ms,
                    "pushed"
                );
            }
        }
        // Two-way: the remote answering again after a problem (or a failed pull) brings
        // down at once what changed meanwhile.
        let (had_problem, pull_failed) = {
            let s = self.status.borrow();
            let failed = s.last_pull.as_ref().is_some_and(|p| p.error.is_some());
            (s.remote_problem.is_some(), failed)
        };
        if (had_problem || pull_failed)
            && matches!(reach, super::reach::Reach::Reached)
            && self.next_pull.is_some()
        {
            self.next_pull = Some(Instant::now());
        }
        self.status.send_modify(|s| {
            s.pushes += 1;
            s.retrying = None;
            s.retrying_since_unix = None;
            if report.is_some() {
                s.last_push_at = Some(Instant::now());
            }
            s.in_flight_paths = 0;
            s.full_pass_running = false;
            s.files_in_index = files_in_index;
            if let Some(excluded) = &excluded {
                s.excluded_in_index = excluded.len();
                s.excluded_sample = excluded.iter().take(5).cloned().collect();
            }
            s.conflicts = conflicts;
            s.corrupt = corrupt;
            s.corrupt_sample = corrupt_sample;
            reach.apply(s);
            if let Some(r) = &report {
                if !r.dry_run {
                    s.files_uploaded += r.uploaded;
                    s.files_deleted += r.deleted.len() as u64;
                    // A conflict file deleted here (settled) is no longer waiting.
                    s.conflict_files.retain(|c| !r.deleted.contains(&c.file));
                    if deletes_tried && (full || !r.refused_deletes.is_empty()) {
                        s.refused_deletes = r.refused_deletes.len();
                        s.refused_deletes_reason = r.refused_reason.clone();
                    }
                    // A batch sees only its own paths; a full pass sees every delete.
                    if full || !r.held_deletes.is_empty() {
                        s.held_deletes = r.held_deletes.len();
                        s.held_deletes_reason = r.held_reason.clone();
                    }
                }
                s.last_push = Some(LastPush {
                    finished_unix: unix_now(),
                    ok: outcome.is_ok() && r.is_clean(),
                    full,
                    uploaded: r.uploaded,
                    unchanged: r.unchanged,
                    failed: r.failed.len(),
                    conflicts: r.conflicts.len(),
                    duration_ms: r.duration_ms,
                    deleted: r.deleted.len() as u64,
                });
            }
        });
        outcome
    }

    /// Close the state index and open it again, after a read-only failure: a connection
    /// opened read-only stays so after a chmod, and SQLite shares the read-only WAL index
    /// between the connections of a process, so the old one is closed first. On failure an
    /// empty in-memory stand-in remains and `index_read_only` stays set: no push runs on it.
    fn reopen_index(&mut self) -> Result<(), StateError> {
        let stand_in = StateIndex::open_at(std::path::Path::new(":memory:"), "")?;
        drop(std::mem::replace(&mut self.setup.state, stand_in));
        let config = &self.setup.config;
        let state = StateIndex::open(config.state_dir(), &config.remote.identity())?;
        self.setup.state = state;
        Ok(())
    }

    /// Whether any of `paths` (relative to the root) is a file with more than one link.
    fn has_hard_links(&self, paths: &[String]) -> bool {
        use std::os::unix::fs::MetadataExt;
        let root = &self.setup.config.root;
        paths.iter().any(|p| {
            std::fs::symlink_metadata(root.join(p)).is_ok_and(|m| m.is_file() && m.nlink() > 1)
        })
    }

    /// Update the failed set from a push's report: its failures join (or stay), and the
    /// paths it covered without failing leave (pushed, unchanged or gone). `covered` is the
    /// batch, or `None` for a full pass, which covers every path.
    fn record_failures(&mut self, report: &PushReport, covered: Option<&[String]>) {
        if report.dry_run {
            return;
        }
        let failed_now: BTreeMap<String, FailedPath> = report
            .failed
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    FailedPath {
                        error: f.error.clone(),
                    },
                )
            })
            .collect();
        match covered {
            None => self.failed.retain(|p, _| failed_now.contains_key(p)),
            Some(paths) => {
                for p in paths {
                    if !failed_now.contains_key(p) {
                        self.failed.remove(p);
                    }
                }
            }
        }
        self.failed.extend(failed_now);
        self.publish_failed();
    }

    fn publish_failed(&mut self) {
        let count = self.failed.len();
        let sample: Vec<String> = self.failed.keys().take(FAILED_SAMPLE).cloned().collect();
        let error = self.failed.values().next().map(|f| f.error.clone());
        self.status.send_modify(|s| {
            s.failed_paths = count;
            s.failed_sample = sample;
            s.failed_error = error;
        });
    }

    /// After a push that ran: a success only when nothing failed in it and nothing failed
    /// before is still waiting for its retry.
    fn after_report(&mut self, report: &PushReport) {
        // The mark this push moved, when no one else had: still nothing new to pull.
        if let Some(etag) = &report.generation {
            self.generation_seen = Some(Some(etag.clone()));
        }
        // Two-way mode: a path another machine changed since the last pull was skipped by
        // the push; the pull settles it (a sync-conflict file) and the push after it goes.
        if self.next_pull.is_some() && !report.dry_run && !report.conflicts.is_empty() {
            self.unsettled
                .extend(report.conflicts.iter().map(|c| c.path.clone()));
            self.next_pull = Some(Instant::now());
        }
        if !report.failed.is_empty() {
            self.files_failed();
        } else if !self.failed.is_empty() {
            // This push went through, earlier failures still wait for their retry.
            if self.next_retry.is_none() {
                self.files_failed();
            } else {
                self.publish_state();
            }
        } else {
            self.succeeded();
        }
    }

    /// Files failed (they stay in the failed set and are retried with back-off, new changes
    /// are not held back). Not a success, and not an outage: the run went through (an
    /// unreachable remote ends the whole run), so the remote answered.
    fn files_failed(&mut self) {
        let n = self.failed.len();
        let first = self
            .failed
            .iter()
            .next()
            .map(|(p, f)| format!("{p}: {}", f.error))
            .unwrap_or_default();
        self.retrying_files = true;
        self.failed(format!("{n} file(s) not pushed, retrying: {first}"));
    }

    fn succeeded(&mut self) {
        self.failures_in_a_row = 0;
        self.index_read_only = false;
        self.retrying_files = false;
        self.next_retry = None;
        self.status.send_modify(|s| {
            s.last_success_unix = Some(unix_now());
            s.last_success_at = Some(Instant::now());
            s.offline_since_unix = None;
            s.offline_since_at = None;
            s.last_error = None;
        });
        self.publish_state();
    }

    fn failed(&mut self, message: String) {
        self.failures_in_a_row += 1;
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: MAX_BACKOFF,
            max_retry_after: MAX_BACKOFF,
            max_attempts: u32::MAX,
        };
        let delay = policy.delay(self.failures_in_a_row, None, rand::random::<f64>());
        self.next_retry = Some(Instant::now() + delay);
        tracing::info!(retry_in = ?delay, "will retry");
        let local = self.index_read_only || self.retrying_files;
        self.status.send_modify(|s| {
            s.last_error = Some(message);
            if !local {
                s.offline_since_unix.get_or_insert_with(unix_now);
                s.offline_since_at.get_or_insert_with(Instant::now);
            }
        });
        self.publish_state();
    }

    fn publish_state(&mut self) {
        let state = if self.paused {
            State::Paused
        } else if self.next_retry.is_some() && self.index_read_only {
            State::Error
        } else if self.next_retry.is_some() && !self.retrying_files {
            State::Offline
        } else if self.next_retry.is_some() || !self.failed.is_empty() {
            State::Retrying
        } else {
            State::Idle
        };
        let waiting = self.waiting_count();
        let next_retry = self.next_retry;
        self.status.send_modify(|s| {
            s.state = state;
            s.waiting_paths = waiting;
            // Never called while a push runs (one command at a time): nothing is in flight.
            s.in_flight_paths = 0;
            s.full_pass_running = false;
            s.next_retry = next_retry;
            if waiting == 0 {
                s.pending_since_at = None;
            }
        });
        self.sd_status();
    }

    fn publish_setup(&mut self) {
        let root = self.setup.config.root.display().to_string();
        let remote = self.setup.remote.describe();
        let credential = self.setup.remote.credential_source();
        let files = self.setup.state.count().unwrap_or(0);
        let conflicts = self.setup.state.conflict_paths().map_or(0, |c| c.len());
        let (kind, label) = super::reach::describe(&self.setup.config.remote);
        let sas = self.setup.remote.features().sas;
        let expires = sas.as_ref().and_then(|s| s.expires_unix);
        let warnings = self.setup.warnings.clone();
        let mode = self.setup.config.sync.mode;
        let encrypted = self.setup.config.encryption.enabled;
        let pull_interval = self.setup.config.sync.pull_interval.as_secs();
        let lacks = sas.and_then(|sas| {
            let names: Vec<&str> = sas
                .missing_for_push()
                .into_iter()
                .map(crate::push::permission_name)
                .collect();
            (!names.is_empty()).then(|| names.join(", "))
        });
        if self.status.borrow().remote != remote {
            self.corrupt.clear();
        }
        self.status.send_modify(|s| {
            if s.remote != remote {
                // Another remote (a reload): nothing is known of it yet.
                let reloaded = !s.remote.is_empty();
                s.forget_remote();
                s.remote_reloaded_unix = reloaded.then(unix_now);
            }
            s.root = root;
            s.remote = remote;
            s.credential = credential;
            s.files_in_index = files;
            s.conflicts = conflicts;
            s.remote_kind = kind;
            s.remote_label = label;
            s.credential_expires_unix = expires;
            s.warnings = warnings;
            s.credential_lacks = lacks;
            s.mode = mode;
            s.encrypted = encrypted;
            s.pull_interval_s = (mode == SyncMode::TwoWay).then_some(pull_interval);
        });
    }

    /// Two-way mode pulls at once (start-up, a reload); backup mode never.
    fn schedule_pull_now(&mut self) {
        self.next_pull = (self.setup.config.sync.mode == SyncMode::TwoWay).then(Instant::now);
        // A reload may name another remote: its first pull lists.
        self.generation_seen = None;
        self.full_pull_at = None;
        if self.next_pull.is_none() {
            self.unsettled.clear();
        }
    }

    /// One pull pass (two-way mode), then a push of what it leaves to push.
    async fn pull(&mut self, reply: Option<oneshot::Sender<Result<PullReport, PushFailure>>>) {
        type Reply = Option<oneshot::Sender<Result<PullReport, PushFailure>>>;
        let refuse = |reply: Reply, code: crate::exit::ExitCode, message: String| {
            if let Some(reply) = reply {
                let _ = reply.send(Err(PushFailure {
                    code,
                    message,
                    report: None,
                }));
            }
        };
        let sync = &self.setup.config.sync;
        let (interval, concurrency) = (sync.pull_interval, sync.concurrency.max(1));
        if sync.mode != SyncMode::TwoWay {
            self.next_pull = None;
            let message = format!(
                "sync.mode is \"backup\": this daemon only pushes; set sync.mode = \"two-way\" in {} and reload",
                self.setup.config.file.display()
            );
            return refuse(reply, crate::exit::USAGE, message);
        }
        self.next_pull = Some(Instant::now() + interval);
        if self.paused {
            return refuse(reply, crate::exit::USAGE, "paused: resume first".into());
        }
        if self.index_read_only
            && let Err(e) = self.reopen_index()
        {
            let message = e.to_string();
            self.note_pull(Err(message.clone()));
            return refuse(reply, crate::exit::USAGE, message);
        }
        // An idle poll: one small request says whether anything changed on the remote since
        // the last full pull; only then is it listed.
        let quiet = reply.is_none()
            && self.unsettled.is_empty()
            && self
                .full_pull_at
                .is_some_and(|at| at.elapsed() < crate::remote::change_mark::FULL_PULL_EVERY);
        let mark = crate::remote::change_mark::read(self.setup.remote.as_ref()).await;
        if quiet
            && let (Ok(now), Some(seen)) = (&mark, &self.generation_seen)
            && now == seen
        {
            tracing::debug!("pull: the remote's change mark has not moved; nothing to list");
            self.status.send_modify(|s| {
                if let Some(last) = s.last_pull.as_mut().filter(|p| p.error.is_none()) {
                    last.at_unix = unix_now();
                    last.downloaded = 0;
                    last.deleted = 0;
                    last.conflict_files.clear();
                }
            });
            return;
        }
        let own_tag = crate::journal::events::machine_tag();
        let opts = PullOptions {
            dry_run: false,
            allow_deletes: false,
            concurrency,
            retry: RetryPolicy::default(),
        };
        let ctx = PullContext {
            root: &self.setup.config.root,
            filter: &self.setup.filter,
            remote: self.setup.remote.as_ref(),
            state: &mut self.setup.state,
            own_tag: &own_tag,
        };
        let result = crate::pull::run(ctx, &opts).await;
        // Read before the listing: whatever changed after it moved the mark again.
        self.generation_seen = match (&result, mark) {
            (Ok(_), Ok(mark)) => Some(mark),
            _ => None,
        };
        if result.is_ok() {
            self.full_pull_at = Some(Instant::now());
        }
        match &result {
            Ok(report) => {
                tracing::info!(
                    downloaded = report.downloaded.len(),
                    deleted = report.deleted.len(),
                    conflicts = report.conflicts.len(),
                    "pulled"
                );
                for c in &report.conflicts {
                    tracing::warn!(path = %crate::redact::printable(&c.path), conflict_file = %crate::redact::printable(&c.conflict_file), "changed here and on the remote: the remote's version is beside it");
                }
                // What it leaves to push (the local side of a conflict, its conflict file)
                // goes in the full pass that follows.
                if report.to_push > 0 || !report.conflicts.is_empty() {
                    self.full_pass_pending = true;
                }
                // Settled now, but what the pull could not do (changed again meanwhile,
                // failed): its rebase, download or conflict file is what the push after it
                // carries up.
                let left: BTreeSet<&String> = report
                    .changed_meanwhile
                    .iter()
                    .chain(report.failed.iter().map(|f| &f.path))
                    .collect();
                self.unsettled.retain(|p| left.contains(p));
                // A path it could not settle (changed again meanwhile, a name taken) is
                // tried again soon, not a whole interval later.
                if !self.unsettled.is_empty() {
                    self.next_pull = Some(Instant::now() + interval.min(UNSETTLED_RETRY));
                }
                self.note_pull(Ok(report));
            }
            Err(e) => {
                tracing::warn!(error = %e, "pull failed");
                self.note_pull(Err(e.to_string()));
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(result.map_err(|e| PushFailure {
                code: match e {
                    crate::pull::PullError::Index(_) => crate::exit::USAGE,
                    _ => crate::exit::FILES_FAILED,
                },
                message: e.to_string(),
                report: None,
            }));
        }
        let files = self.setup.state.count().unwrap_or(0);
        self.status.send_modify(|s| s.files_in_index = files);
        self.attempt().await;
    }

    fn note_pull(&mut self, result: Result<&PullReport, String>) {
        let waiting: Option<Vec<_>> = result.as_ref().ok().map(|r| {
            (r.waiting.iter())
                .filter_map(|f| crate::protocol::WaitingConflict::of(f))
                .collect()
        });
        let last = match result {
            Ok(r) => crate::protocol::LastPull {
                at_unix: unix_now(),
                downloaded: r.downloaded.len(),
                deleted: r.deleted.len(),
                conflict_files: r
                    .conflicts
                    .iter()
                    .map(|c| c.conflict_file.clone())
                    .collect(),
                error: None,
            },
            Err(error) => crate::protocol::LastPull {
                at_unix: unix_now(),
                error: Some(error),
                ..Default::default()
            },
        };
        self.status.send_modify(|s| {
            if let Some(waiting) = waiting {
                s.conflict_files = waiting;
            }
            s.last_pull = Some(last);
        });
    }

    fn sd_status(&self) {
        let s = self.status.borrow();
        let text = match s.state {
            State::Idle => format!("idle; {} files in sync", s.files_in_index),
            State::Pushing => "pushing".to_string(),
            State::Offline => format!(
                "offline: {}",
                s.last_error.as_deref().unwrap_or("remote unreachable")
            ),
            State::Paused => "paused".to_string(),
            State::Retrying => format!(
                "retrying {} file(s): {}",
                s.failed_paths,
                s.failed_error.as_deref().unwrap_or("see the log")
            ),
            State::Error => format!(
                "error: {}",
                s.last_error.as_deref().unwrap_or("see the log")
            ),
        };
        super::sd_notify::status(&text);
    }
}

type Waiter = (
    Option<mpsc::UnboundedSender<PushEvent>>,
    Option<oneshot::Sender<Result<PushReport, PushFailure>>>,
);

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
