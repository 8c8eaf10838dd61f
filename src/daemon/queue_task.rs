//! The queue task: drains watcher events into the dirty set ([`DirtyQueue`]), hands ready
//! batches to the worker, forwards rescans and watch-limit changes, and publishes its part
//! of `ctl status`.

use super::queue::DirtyQueue;
use super::watch::EventSink;
use super::worker::{WorkerCmd, WorkerStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The queue's part of `ctl status`; the queue task is its one writer.
#[derive(Debug, Clone, Default)]
pub struct QueueStatus {
    pub pending: usize,
    pub oldest: Option<Instant>,
    /// Paths handed to the worker since start-up (the worker counts those it has taken:
    /// the difference is what waits in its channel while it pushes).
    pub handed_total: u64,
    /// When the oldest path handed to the worker and not yet taken became dirty (read
    /// only while some are).
    pub handed_since: Option<Instant>,
}

impl QueueStatus {
    /// Paths handed over and not yet taken by a worker that has taken `taken`.
    pub fn handed_over(&self, taken: u64) -> usize {
        self.handed_total.saturating_sub(taken) as usize
    }
}

/// Settings the queue task needs, replaced on reload.
pub struct QueueSettings {
    pub debounce: Duration,
    pub max_delay: Duration,
    pub filter: crate::filter::Filter,
}

/// The queue task: drains watcher events into the dirty set and sends ready batches.
pub async fn run(
    sink: Arc<EventSink>,
    mut settings: QueueSettings,
    mut settings_rx: mpsc::Receiver<QueueSettings>,
    worker: mpsc::Sender<WorkerCmd>,
    status: tokio::sync::watch::Sender<QueueStatus>,
    worker_status: tokio::sync::watch::Receiver<WorkerStatus>,
    cancel: CancellationToken,
) {
    let mut queue = DirtyQueue::new(settings.debounce, settings.max_delay);
    loop {
        let deadline = queue.next_deadline();
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sink.wait() => {
                let (paths, rescan) = sink.drain();
                let now = Instant::now();
                for path in paths {
                    if worth_queueing(&settings.filter, &path) {
                        queue.touch(path, now);
                    }
                }
                if let Some(limited) = sink.take_limited()
                    && worker.send(WorkerCmd::WatchLimited(limited)).await.is_err()
                {
                    break;
                }
                if let Some(reason) = rescan
                    && worker.send(WorkerCmd::Rescan(reason)).await.is_err()
                {
                    break;
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                let oldest = queue.oldest();
                let ready = queue.take_ready(Instant::now());
                if !ready.is_empty() {
                    let taken = worker_status.borrow().taken_from_queue;
                    // Counted from here until the worker takes the batch (it may be
                    // pushing): published before it is sent, so never fewer than taken.
                    status.send_modify(|s| {
                        if s.handed_over(taken) == 0 {
                            s.handed_since = None;
                        }
                        s.handed_since = s.handed_since.or(oldest);
                        s.handed_total += ready.len() as u64;
                    });
                    if worker.send(WorkerCmd::Batch(ready)).await.is_err() {
                        break;
                    }
                }
            }
            Some(new) = settings_rx.recv() => {
                queue.set_timings(new.debounce, new.max_delay);
                settings = new;
            }
        }
        status.send_modify(|s| {
            s.pending = queue.len();
            s.oldest = queue.oldest();
        });
    }
}

/// Drop events for paths inside skipped directories (`.git`, `target`, …) and hidden
/// names early; everything else is checked against the rules by the worker's scan, which
/// also knows whether a path is a file or a new directory.
fn worth_queueing(filter: &crate::filter::Filter, rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.starts_with('.') {
        return false;
    }
    match rel.rfind('/') {
        Some(pos) => filter.accepts_dir(&rel[..pos]),
        None => true,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
