//! `ctl status`, projected from the parts that own it. Each part has one writer: the
//! worker publishes [`WorkerStatus`] (reach, failures, counters, the paths it has taken
//! from the queue), the queue task publishes [`QueueStatus`] (what debounces, what it has
//! handed over), the watcher keeps its health. [`Sources::project`] reads them and derives
//! the rest (pending, ages, watch, the verdict); nothing here writes.

use super::queue_task::QueueStatus;
use super::watch::{EventSink, WatchHealth};
use super::worker::WorkerStatus;
use crate::protocol::{Status, WatchState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Unwatchable directories named in the status.
const UNWATCHED_SAMPLE: usize = 5;

/// Where `ctl status` comes from.
#[derive(Clone)]
pub struct Sources {
    pub worker: watch::Receiver<WorkerStatus>,
    pub queue: watch::Receiver<QueueStatus>,
    /// What the watcher cannot see (unreadable directories, a missing root).
    pub watch_health: Arc<EventSink>,
    pub started: Instant,
    pub socket: PathBuf,
}

impl Sources {
    /// The `status` reply.
    pub fn project(&self) -> Status {
        // The worker first: what it has taken was handed over before, so the queue read
        // after it never counts fewer paths handed over than taken.
        let worker = self.worker.borrow().clone();
        let queue = self.queue.borrow().clone();
        let handed_over = queue.handed_over(worker.taken_from_queue);
        // Everything not yet on the remote: debouncing, handed to a busy worker, waiting to
        // be retried, or in the push running now.
        let queued = queue.pending + handed_over;
        let health = self.watch_health.health();
        let (watch, issue) = watch_summary(&health, worker.watch_limited.as_deref());
        // The oldest of what the queue holds and what waits in the worker: a path pending
        // anywhere has an age.
        let handed = (handed_over > 0).then_some(queue.handed_since).flatten();
        let oldest = [
            queue.oldest.map(|t| t.elapsed()),
            handed.map(|t| t.elapsed()),
            worker.pending_since_at.map(|t| t.elapsed()),
        ]
        .into_iter()
        .flatten()
        .max();
        let mut status = Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs(),
            socket: self.socket.display().to_string(),
            queued_paths: queued,
            pending_paths: queued + worker.waiting_paths + worker.in_flight_paths,
            pending_oldest_ms: oldest.map(|d| d.as_millis() as u64),
            // Ages from the monotonic clock: a wall clock stepped back must not make them
            // negative (or a step forward make them huge).
            last_success_age_s: worker.last_success_at.map(|t| t.elapsed().as_secs() as i64),
            last_push_age_s: worker.last_push_at.map(|t| t.elapsed().as_secs()),
            offline_for_s: worker.offline_since_at.map(|t| t.elapsed().as_secs()),
            watch,
            watch_issue: issue,
            unwatched_dirs: health.unwatched.len(),
            unwatched_dirs_sample: health
                .unwatched
                .iter()
                .take(UNWATCHED_SAMPLE)
                .cloned()
                .collect(),
            next_retry_in_s: worker.next_retry.map(|t| {
                t.saturating_duration_since(tokio::time::Instant::now())
                    .as_secs()
            }),
            worker,
            verdict: None,
        };
        status.verdict = Some(crate::verdict::of(&status, super::worker::unix_now()));
        status
    }
}

/// `watch` and, unless ok, a sentence for people.
fn watch_summary(health: &WatchHealth, limited: Option<&str>) -> (WatchState, Option<String>) {
    if let Some(missing) = &health.root_missing {
        return (WatchState::RootMissing, Some(missing.clone()));
    }
    if !health.unwatched.is_empty() {
        let n = health.unwatched.len();
        let mut names: Vec<&str> = health
            .unwatched
            .iter()
            .take(UNWATCHED_SAMPLE)
            .map(String::as_str)
            .collect();
        if n > UNWATCHED_SAMPLE {
            names.push("…");
        }
        let issue = format!(
            "{n} director{} cannot be read and {} not backed up: {} (fix the permissions; they are picked up when readable)",
            if n == 1 { "y" } else { "ies" },
            if n == 1 { "is" } else { "are" },
            names.join(", ")
        );
        return (WatchState::Partial, Some(issue));
    }
    match limited {
        Some(m) => (WatchState::Limited, Some(m.to_string())),
        None => (WatchState::Ok, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_summary_names_what_is_not_watched() {
        let mut h = WatchHealth::default();
        assert_eq!(watch_summary(&h, None), (WatchState::Ok, None));
        let (w, issue) = watch_summary(&h, Some("raise the limit"));
        assert_eq!(
            (w, issue.as_deref()),
            (WatchState::Limited, Some("raise the limit"))
        );
        for d in ["a", "b/c", "d", "e", "f", "g"] {
            h.unwatched.insert(d.to_string());
        }
        let (w, issue) = watch_summary(&h, Some("raise the limit"));
        let issue = issue.unwrap();
        assert_eq!(w, WatchState::Partial);
        assert!(issue.starts_with("6 directories cannot be read"), "{issue}");
        assert!(issue.contains("a, b/c, d, e, f, …"), "{issue}");
        h.root_missing = Some("gone".into());
        assert_eq!(
            watch_summary(&h, None),
            (WatchState::RootMissing, Some("gone".into()))
        );
    }

    #[tokio::test]
    async fn pending_counts_every_owner_once() {
        let worker = WorkerStatus {
            taken_from_queue: 5,
            waiting_paths: 1,
            in_flight_paths: 2,
            ..Default::default()
        };
        let queue = QueueStatus {
            pending: 3,
            // Five taken, two still in the worker's channel.
            handed_total: 7,
            ..Default::default()
        };
        let (_worker_tx, worker) = watch::channel(worker);
        let (_queue_tx, queue) = watch::channel(queue);
        let sources = Sources {
            worker,
            queue,
            watch_health: Arc::default(),
            started: Instant::now(),
            socket: PathBuf::from("s"),
        };
        let s = sources.project();
        assert_eq!(s.queued_paths, 3 + 2);
        assert_eq!(s.pending_paths, 3 + 2 + 1 + 2);
        assert_eq!(s.watch, WatchState::Ok);
        assert!(s.verdict.is_some());
    }

    #[test]
    fn the_watch_state_reads_as_on_the_wire() {
        for w in [
            WatchState::Ok,
            WatchState::Limited,
            WatchState::Partial,
            WatchState::RootMissing,
        ] {
            assert_eq!(
                serde_json::to_string(&w).unwrap(),
                format!("\"{w}\""),
                "{w:?}"
            );
        }
    }
}
