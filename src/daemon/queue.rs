//! The dirty set: which paths changed, since when, and which are ready to push.
//!
//! Plain logic with time passed in (notify-debouncer-full's model), so it is tested with
//! tables of instants and no sleeping. A path is ready once it has been quiet for
//! `debounce`, or dirty for `max_delay` even if it is still being written (a file appended
//! to continuously is still pushed regularly). Memory is bounded by distinct paths.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Touch {
    first: Instant,
    last: Instant,
}

#[derive(Debug)]
pub struct DirtyQueue {
    debounce: Duration,
    max_delay: Duration,
    entries: HashMap<String, Touch>,
}

impl DirtyQueue {
    pub fn new(debounce: Duration, max_delay: Duration) -> Self {
        DirtyQueue {
            debounce,
            max_delay,
            entries: HashMap::new(),
        }
    }

    /// New timings (a reload); the dirty set is kept.
    pub fn set_timings(&mut self, debounce: Duration, max_delay: Duration) {
        self.debounce = debounce;
        self.max_delay = max_delay;
    }

    /// `path` changed at `now`.
    pub fn touch(&mut self, path: String, now: Instant) {
        self.entries
            .entry(path)
            .and_modify(|t| t.last = now)
            .or_insert(Touch {
                first: now,
                last: now,
            });
    }

    fn due(&self, t: &Touch) -> Instant {
        (t.last + self.debounce).min(t.first + self.max_delay)
    }

    /// Remove and return the paths that are ready at `now`, sorted.
    pub fn take_ready(&mut self, now: Instant) -> Vec<String> {
        let mut ready: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, t)| self.due(t) <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &ready {
            self.entries.remove(p);
        }
        ready.sort();
        ready
    }

    /// When the next path becomes ready; `None` when nothing is dirty (sleep forever).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|t| self.due(t)).min()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the longest-waiting path was first touched.
    pub fn oldest(&self) -> Option<Instant> {
        self.entries.values().map(|t| t.first).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(300);
    const M: Duration = Duration::from_millis(5000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_single_write_is_ready_after_the_debounce() {
        let t0 = Instant::now();
        let mut q = DirtyQueue::new(D, M);
        assert_eq!(q.next_deadline(), None, "idle: no timer at all");
        q.touch("a.md".into(), t0);
        assert_eq!(q.next_deadline(), Some(t0 + D));
        assert!(q.take_ready(t0 + ms(299)).is_empty());
        assert_eq!(q.take_ready(t0 + ms(300)), vec!["a.md"]);
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn writes_in_a_burst_coalesce_into_one_batch() {
        let t0 = Instant::now();
        let mut q = DirtyQueue::new(D, M);
        // (offset ms, path) — one path written three times, two others once.
        let events = [
            (0, "a.md"),
            (50, "b.md"),
            (100, "a.md"),
            (150, "c.md"),
            (200, "a.md"),
        ];
        for (at, p) in events {
            q.touch(p.into(), t0 + ms(at));
        }
        assert_eq!(q.len(), 3);
        // b is due at 350, c at 450, a at 500.
        let cases = [
            (349, vec![]),
            (350, vec!["b.md"]),
            (499, vec!["c.md"]),
            (500, vec!["a.md"]),
        ];
        for (at, want) in cases {
            assert_eq!(q.take_ready(t0 + ms(at)), want, "at {at} ms");
        }
    }

    #[test]
    fn a_file_written_continuously_is_still_pushed_at_max_delay() {
        let t0 = Instant::now();
        let mut q = DirtyQueue::new(D, M);
        let mut batches = Vec::new();
        // Appended every 50 ms for 8 s.
        for i in 0..=160 {
            let now = t0 + ms(i * 50);
            let ready = q.take_ready(now);
            if !ready.is_empty() {
                batches.push(now - t0);
            }
            q.touch("log.jsonl".into(), now);
        }
        assert_eq!(
            batches,
            vec![ms(5000)],
            "pushed once at max_delay while writing"
        );
        // After the writes stop it goes once more, a debounce later.
        assert_eq!(q.next_deadline(), Some(t0 + ms(8000) + D));
    }

    #[test]
    fn touches_after_a_take_start_a_new_window() {
        let t0 = Instant::now();
        let mut q = DirtyQueue::new(D, M);
        q.touch("a.md".into(), t0);
        assert_eq!(q.take_ready(t0 + D), vec!["a.md"]);
        q.touch("a.md".into(), t0 + ms(400));
        assert_eq!(q.oldest(), Some(t0 + ms(400)));
        assert_eq!(q.next_deadline(), Some(t0 + ms(700)));
    }

    #[test]
    fn new_timings_apply_to_the_dirty_set() {
        let t0 = Instant::now();
        let mut q = DirtyQueue::new(D, M);
        q.touch("a.md".into(), t0);
        q.set_timings(ms(1000), ms(2000));
        assert!(q.take_ready(t0 + D).is_empty());
        assert_eq!(q.take_ready(t0 + ms(1000)), vec!["a.md"]);
    }
}
