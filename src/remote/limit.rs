//! The gate every request of a remote goes through: at most the
//! [`Controller`](super::concurrency::Controller)'s limit in flight, and none while a
//! `Retry-After` is in force.
//!
//! A permit covers one request attempt and nothing else: it is taken right before the
//! request is sent and given back when the answer is in, never held while waiting for
//! memory, a back-off or another permit. So a large file whose blocks wait for permits
//! cannot starve the requests holding them, and no two waits ever nest (the deadlock the
//! memory budget once had).

use super::concurrency::{Bound, Controller, Sample};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Semaphore;

/// Now, from tokio's clock (so a paused test clock drives the limiter too).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The limit over one run: where it started, its lowest and highest, where it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LimitReport {
    pub start: usize,
    pub min: usize,
    pub max: usize,
    #[serde(rename = "final")]
    pub last: usize,
    /// Whether the limit adapts (`sync.concurrency = "auto"`).
    pub adaptive: bool,
}

pub struct Limiter {
    /// One per request attempt in flight.
    requests: Semaphore,
    /// One per job (a file's upload, start to end) in flight: a job waiting for a request
    /// slot is admitted only while there is room for it, so files do not pile up in
    /// front of a lowered limit (a large file's blocks still share its request slots).
    jobs: Semaphore,
    state: Mutex<State>,
}

struct State {
    controller: Controller,
    requests: Ledger,
    jobs: Ledger,
    run: LimitReport,
}

/// How a semaphore's permits follow a limit that moves while some are out.
struct Ledger {
    /// The limit the permits currently add up to.
    granted: usize,
    /// Permits out beyond the limit, kept as they come back.
    debt: usize,
}

impl Ledger {
    /// One permit comes back while the limit is `limit`: how many to give the semaphore.
    fn returned(&mut self, limit: usize) -> usize {
        let mut add = 1usize;
        if limit > self.granted {
            add += limit - self.granted;
        } else {
            self.debt += self.granted - limit;
        }
        self.granted = limit;
        let repaid = add.min(self.debt);
        self.debt -= repaid;
        add - repaid
    }
}

impl Limiter {
    pub fn new(bound: Bound) -> Arc<Self> {
        let controller = Controller::new(bound, now());
        let limit = controller.limit();
        Arc::new(Limiter {
            requests: Semaphore::new(limit),
            jobs: Semaphore::new(limit),
            state: Mutex::new(State {
                controller,
                requests: Ledger {
                    granted: limit,
                    debt: 0,
                },
                jobs: Ledger {
                    granted: limit,
                    debt: 0,
                },
                run: LimitReport {
                    start: limit,
                    min: limit,
                    max: limit,
                    last: limit,
                    adaptive: matches!(bound, Bound::Auto { .. }),
                },
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one still holds valid numbers.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.state().controller.limit()
    }

    /// Start a new run's report at the current limit.
    pub fn begin_run(&self) {
        let mut s = self.state();
        let limit = s.controller.limit();
        s.run.start = limit;
        s.run.min = limit;
        s.run.max = limit;
        s.run.last = limit;
    }

    /// The limit since [`begin_run`](Self::begin_run).
    pub fn run_report(&self) -> LimitReport {
        self.state().run
    }

    /// Wait for a slot (and for any `Retry-After` in force to pass).
    pub async fn acquire(&self) -> Permit<'_> {
        // The semaphore is never closed; if it ever were, going ahead unlimited is better
        // than failing every request.
        if let Ok(p) = self.requests.acquire().await {
            p.forget();
        }
        loop {
            let until = self.state().controller.paused_until(now());
            match until {
                Some(until) => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await
                }
                None => break,
            }
        }
        Permit {
            limiter: self,
            started: now(),
            generation: self.state().controller.generation(),
            done: false,
        }
    }

    fn release(&self, generation: u64, sample: Sample) {
        let mut s = self.state();
        s.controller.on_sample(now(), generation, sample);
        let limit = s.controller.limit();
        // This request's slot comes back, then the semaphore follows the new limit: more
        // slots at once, fewer as requests in flight return theirs.
        let add = s.requests.returned(limit);
        s.run.min = s.run.min.min(limit);
        s.run.max = s.run.max.max(limit);
        s.run.last = limit;
        drop(s);
        if add > 0 {
            self.requests.add_permits(add);
        }
    }

    /// Wait until one more job (a file's upload) may start; held until it ends.
    pub async fn admit(&self) -> JobSlot<'_> {
        if let Ok(p) = self.jobs.acquire().await {
            p.forget();
        }
        JobSlot { limiter: self }
    }
}

/// A job's place; given back on drop.
pub struct JobSlot<'a> {
    limiter: &'a Limiter,
}

impl Drop for JobSlot<'_> {
    fn drop(&mut self) {
        let mut s = self.limiter.state();
        let limit = s.controller.limit();
        let add = s.jobs.returned(limit);
        drop(s);
        if add > 0 {
            self.limiter.jobs.add_permits(add);
        }
    }
}

/// One request's slot; report how it went with [`finish`](Self::finish). Dropped
/// unfinished (a cancelled request), it gives its slot back and says nothing.
pub struct Permit<'a> {
    limiter: &'a Limiter,
    started: std::time::Instant,
    generation: u64,
    done: bool,
}

impl Permit<'_> {
    /// Give the slot back with what the request said about the path. `timed` is false for
    /// requests whose duration says little about queueing (large blocks, downloads).
    pub fn finish(mut self, outcome: Outcome, timed: bool) {
        self.done = true;
        let sample = match outcome {
            Outcome::Answered => Sample::Answered {
                latency: timed.then(|| now().saturating_duration_since(self.started)),
            },
            Outcome::Overloaded { retry_after } => Sample::Overloaded { retry_after },
            Outcome::Neutral => Sample::Neutral,
        };
        self.limiter.release(self.generation, sample);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.release(self.generation, Sample::Neutral);
        }
    }
}

/// How a request ended, as far as the path is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Answered,
    Overloaded {
        retry_after: Option<std::time::Duration>,
    },
    Neutral,
}

impl Outcome {
    /// Sort a request's result: pushback and unreachability slow down, any other answer
    /// from the service (a conflict, a 404) is still an answer.
    pub fn of<T>(result: &Result<T, super::RemoteError>) -> Outcome {
        use super::RemoteError;
        match result {
            Ok(_) | Err(RemoteError::Conflict) => Outcome::Answered,
            Err(RemoteError::Transient { retry_after, .. }) => Outcome::Overloaded {
                retry_after: *retry_after,
            },
            Err(RemoteError::Unreachable { .. }) => Outcome::Overloaded { retry_after: None },
            Err(_) => Outcome::Neutral,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_in_flight_and_the_limit_follows_pushback() {
        // An upper bound of 32 makes `auto` start there.
        let limiter = Limiter::new(Bound::Auto { max: 32 });
        let permits: Vec<_> = futures::future::join_all((0..32).map(|_| limiter.acquire())).await;
        // The 33rd waits.
        let waiting = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(
            waiting.is_err(),
            "a 33rd request started with a limit of 32"
        );
        let mut permits = permits.into_iter();
        permits
            .next()
            .expect("32 permits")
            .finish(Outcome::Overloaded { retry_after: None }, true);
        assert_eq!(limiter.limit(), 16);
        // 31 still in flight, limit 16: returning 15 frees nothing.
        for p in permits.by_ref().take(15) {
            p.finish(Outcome::Answered, true);
        }
        let waiting = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(
            waiting.is_err(),
            "a request started above the lowered limit"
        );
        drop(permits.next()); // 15 in flight now: one slot free
        let started = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(started.is_ok(), "a slot under the limit was not given out");
        let report = limiter.run_report();
        assert_eq!((report.start, report.min), (32, 16));
    }

    #[tokio::test(start_paused = true)]
    async fn no_request_starts_while_a_retry_after_is_in_force() {
        let limiter = Limiter::new(Bound::Fixed(4));
        let p = limiter.acquire().await;
        p.finish(
            Outcome::Overloaded {
                retry_after: Some(Duration::from_secs(5)),
            },
            true,
        );
        let before = tokio::time::Instant::now();
        let _p = limiter.acquire().await;
        assert!(tokio::time::Instant::now() - before >= Duration::from_secs(5));
        assert_eq!(limiter.limit(), 4, "a fixed limit does not move");
    }
}
