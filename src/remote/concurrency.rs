//! How many requests may be in flight: an AIMD controller with a latency and throughput
//! check, fed one sample per finished request.
//!
//! Pure logic: time comes in as `Instant` parameters and latencies as samples, so every
//! rule is unit-tested with synthetic numbers. [`super::limit::Limiter`] applies it.
//!
//! - **Slow start.** The limit doubles every window (a window ends once as many requests
//!   finished as the limit allowed: about one round trip of the whole set in flight) while
//!   latency holds or throughput still grows (the first window, with no rate to compare,
//!   on latency alone), so a path 100 ms away reaches a limit of 128 within a round trip or
//!   two.
//! - **Congestion avoidance.** Once a window shows latency up without throughput up, the
//!   limit grows by a tenth per good window and shrinks in proportion to the excess latency
//!   (keeping half to nine tenths) per bad one. Latency alone never takes it below three
//!   times what the path holds at the rate seen (rate × lowest latency, Little's law), nor below
//!   16, nor above the start: far away that keeps a busy server fed; on loopback or a LAN,
//!   where the path holds almost nothing, a busy server works with few requests queued.
//!   A window's rate leaves out a Retry-After pause that ended inside it.
//! - **Pushback.** 503 ServerBusy, 500 OperationTimedOut, 429, timeouts and connection
//!   errors halve the limit (down to 1), once per generation: requests that were already in
//!   flight when the limit was cut do not cut it again. A `Retry-After` stops new requests
//!   until it has passed.
//! - **Fixed.** A configured number (`sync.concurrency = 16`) never moves; `Retry-After`
//!   is still honoured.

use std::time::{Duration, Instant};

/// Where `auto` starts.
pub const AUTO_START: usize = 64;
/// The default upper bound of `auto`.
pub const AUTO_MAX: usize = 128;
/// The longest pause a `Retry-After` may impose on every request.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Window latency may rise this much over the lowest seen before it counts as queueing…
const LATENCY_TOLERANCE: f64 = 2.0;
/// …and at least this much in absolute terms (sub-millisecond loopback noise is not queueing).
const LATENCY_SLACK: Duration = Duration::from_millis(20);
/// A window's rate must beat the previous one by this factor to count as "still growing".
const RATE_GROWTH: f64 = 1.10;
/// Fewest samples in a window (small limits would otherwise decide on noise).
const MIN_WINDOW: u64 = 8;
/// A window of queueing keeps at most this share of the limit…
const DECREASE_MAX: f64 = 0.9;
/// …and at least this share.
const DECREASE_MIN: f64 = 0.5;
/// Latency alone never takes the limit below this.
const LATENCY_FLOOR: f64 = 16.0;
/// …nor below this many times what the path holds (rate × lowest latency). Measured: at
/// twice, a busy Azurite 40 ms away was left with 42–55 in flight where 64 did best.
const PATH_HEADROOM: f64 = 3.0;

/// The configured bound: `auto` (adaptive up to `max`) or a fixed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Auto { max: usize },
    Fixed(usize),
}

impl Bound {
    /// The most requests ever in flight.
    pub fn max(self) -> usize {
        match self {
            Bound::Auto { max } | Bound::Fixed(max) => max.max(1),
        }
    }
}

/// What one finished request says about the path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// Answered. `latency` is `None` for requests whose time says little about queueing
    /// (a 4 MiB block, a download): they count as answered only.
    Answered { latency: Option<Duration> },
    /// The service pushed back or could not be reached: 503/500/429/408, a timeout, a
    /// connection error.
    Overloaded { retry_after: Option<Duration> },
    /// Anything else (a conflict, a refusal, a cancelled request): no information.
    Neutral,
}

#[derive(Debug, Clone)]
pub struct Controller {
    bound: Bound,
    limit: f64,
    /// Where `auto` started: latency alone never takes the limit below the path floor, which
    /// is never above this.
    start: f64,
    slow_start: bool,
    /// Bumped on every pushback cut; a sample from an older generation cannot cut again.
    generation: u64,
    min_latency: Option<Duration>,
    window: Window,
    last_rate: Option<f64>,
    paused_until: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Window {
    start: Instant,
    answered: u64,
    latency_sum: Duration,
    latency_count: u32,
}

impl Window {
    fn new(start: Instant) -> Self {
        Window {
            start,
            answered: 0,
            latency_sum: Duration::ZERO,
            latency_count: 0,
        }
    }
}

impl Controller {
    pub fn new(bound: Bound, now: Instant) -> Self {
        let (limit, slow_start) = match bound {
            Bound::Auto { max } => (AUTO_START.min(max).max(1), true),
            Bound::Fixed(n) => (n.max(1), false),
        };
        Controller {
            bound,
            limit: limit as f64,
            start: limit as f64,
            slow_start,
            generation: 0,
            min_latency: None,
            window: Window::new(now),
            last_rate: None,
            paused_until: None,
        }
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        (self.limit.floor() as usize).clamp(1, self.bound.max())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// No request may start before this (a `Retry-After` in force).
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
    }

    /// Take in one finished request, issued while `generation` was current.
    pub fn on_sample(&mut self, now: Instant, generation: u64, sample: Sample) {
        match sample {
            Sample::Neutral => {}
            Sample::Overloaded { retry_after } => {
                if let Some(wait) = retry_after {
                    let until = now + wait.min(MAX_PAUSE);
                    self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
                }
                if matches!(self.bound, Bound::Auto { .. }) && generation == self.generation {
                    self.limit = (self.limit / 2.0).max(1.0);
                    self.slow_start = false;
                    self.generation += 1;
                    self.window = Window::new(now);
                    self.last_rate = None;
                }
            }
            Sample::Answered { latency } => {
                if let Some(l) = latency {
                    self.min_latency = Some(self.min_latency.map_or(l, |m| m.min(l)));
                    self.window.latency_sum += l;
                    self.window.latency_count += 1;
                }
                self.window.answered += 1;
                if self.window.answered >= (self.limit() as u64).max(MIN_WINDOW) {
                    self.end_window(now);
                }
            }
        }
    }

    fn end_window(&mut self, now: Instant) {
        let Bound::Auto { max } = self.bound else {
            self.window = Window::new(now);
            return;
        };
        // The rate over the time requests were allowed to run: a Retry-After pause that ended
        // inside the window is not the path being slow.
        let start = match self.paused_until {
            Some(until) if until > self.window.start && until <= now => until,
            _ => self.window.start,
        };
        let elapsed = now.saturating_duration_since(start);
        let rate =
            (elapsed > Duration::ZERO).then(|| self.window.answered as f64 / elapsed.as_secs_f64());
        // Latency the path tolerates before it counts as queueing, and the window's mean.
        let latency = match (self.min_latency, self.window.latency_count) {
            (Some(min), n) if n > 0 => Some((
                min.mul_f64(LATENCY_TOLERANCE).max(min + LATENCY_SLACK),
                self.window.latency_sum / n,
            )),
            _ => None,
        };
        let latency_holds = latency.is_none_or(|(tolerated, mean)| mean <= tolerated);
        // The first window has nothing to compare its rate with: latency alone decides.
        let rate_grows = match (rate, self.last_rate) {
            (Some(r), Some(last)) => r >= last * RATE_GROWTH,
            _ => false,
        };
        let max = max.max(1) as f64;
        if latency_holds || rate_grows {
            self.limit = if self.slow_start {
                self.limit * 2.0
            } else {
                self.limit + (self.limit / 10.0).max(1.0)
            }
            .min(max);
        } else {
            self.slow_start = false;
            // Queueing without more throughput: cut in proportion to the excess latency
            // (a gradient, as in Netflix's concurrency-limits), keeping half to nine tenths.
            let factor = latency.map_or(DECREASE_MAX, |(tolerated, mean)| {
                (tolerated.as_secs_f64() / mean.as_secs_f64().max(f64::EPSILON))
                    .clamp(DECREASE_MIN, DECREASE_MAX)
            });
            let floor = self.path_floor(rate.or(self.last_rate));
            self.limit = (self.limit * factor).max(floor.min(self.limit));
        }
        self.last_rate = rate.or(self.last_rate);
        self.window = Window::new(now);
    }

    /// The fewest requests latency alone may leave in flight: three times what the path holds at
    /// the rate just seen (Little's law: rate × the lowest latency), so a server far away
    /// that is simply busy is never starved, and at least [`LATENCY_FLOOR`]; never above the
    /// start. On loopback or a LAN the path holds almost nothing and the floor is low: a busy
    /// server there does best with few requests queued (measured: Azurite on loopback answers
    /// 16 in flight as fast as 64 or faster).
    fn path_floor(&self, rate: Option<f64>) -> f64 {
        let in_path = match (rate, self.min_latency) {
            (Some(r), Some(min)) => PATH_HEADROOM * r * min.as_secs_f64(),
            _ => self.start,
        };
        in_path.max(LATENCY_FLOOR).min(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feed `n` answers `gap` apart with latency `latency`; returns the clock after them.
    fn answer(
        c: &mut Controller,
        mut now: Instant,
        n: usize,
        gap: Duration,
        latency: Duration,
    ) -> Instant {
        for _ in 0..n {
            now += gap;
            let generation = c.generation();
            c.on_sample(
                now,
                generation,
                Sample::Answered {
                    latency: Some(latency),
                },
            );
        }
        now
    }

    /// `times` pushbacks at `now`, each in a new generation (each answers a request sent
    /// after the previous cut).
    fn pushed_back(c: &mut Controller, now: Instant, times: usize) {
        for _ in 0..times {
            let g = c.generation();
            c.on_sample(now, g, Sample::Overloaded { retry_after: None });
        }
    }

    /// A path with a fixed round trip and no queueing: every window's rate is the limit
    /// over the round trip.
    fn distant_path(
        c: &mut Controller,
        mut now: Instant,
        rtt: Duration,
        windows: usize,
    ) -> Instant {
        for _ in 0..windows {
            let n = c.limit();
            now = answer(c, now, n, rtt / n as u32, rtt);
        }
        now
    }

    #[test]
    fn auto_starts_at_64_and_climbs_to_the_bound_within_a_round_trip_at_a_distance() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Auto { max: 128 }, t0);
        assert_eq!(c.limit(), 64);
        distant_path(&mut c, t0, 100 * MS, 1);
        assert_eq!(c.limit(), 128, "64 → 128 in one window");
        distant_path(&mut c, t0, 100 * MS, 10);
        assert_eq!(c.limit(), 128, "never above the bound");
    }

    #[test]
    fn a_smaller_bound_caps_the_start() {
        let c = Controller::new(Bound::Auto { max: 8 }, Instant::now());
        assert_eq!(c.limit(), 8);
    }

    /// A server that answers `per_second` requests whatever the depth, `base` away: each
    /// window at the current limit, latency = max(base, depth / per_second) (Little's law).
    /// Returns the limit after each window.
    fn busy_server(
        c: &mut Controller,
        mut now: Instant,
        base: Duration,
        per_second: f64,
        windows: usize,
    ) -> Vec<usize> {
        // The first answer comes before any queue has formed.
        now = answer(
            c,
            now,
            1,
            base,
            base + Duration::from_secs_f64(1.0 / per_second),
        );
        let mut limits = Vec::new();
        for _ in 0..windows {
            let depth = c.limit();
            let latency = Duration::from_secs_f64(depth as f64 / per_second).max(base);
            let rate = per_second.min(depth as f64 / base.as_secs_f64());
            now = answer(c, now, depth, Duration::from_secs_f64(1.0 / rate), latency);
            limits.push(c.limit());
        }
        limits
    }

    #[test]
    fn a_busy_server_close_by_is_left_few_requests_queued_but_never_fewer_than_16() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Auto { max: 128 }, t0);
        // Loopback: 2 ms at best, 600 requests/s at any depth (a CPU-bound emulator).
        let limits = busy_server(&mut c, t0, 2 * MS, 600.0, 40);
        assert!(
            limits[..4].iter().all(|&l| l < AUTO_START),
            "queueing from the first window: no climb: {limits:?}"
        );
        assert!(
            limits[4..].iter().all(|&l| (16..=24).contains(&l)),
            "settles just above 16 (three times the 1.2 requests the path holds is less): {limits:?}"
        );
    }

    #[test]
    fn a_busy_server_far_away_is_never_starved_by_latency_alone() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Auto { max: 128 }, t0);
        // 40 ms away, 700 requests/s at any depth: the path holds 28 at that rate, so
        // latency alone must leave at least three times that, capped at the start (64).
        let limits = busy_server(&mut c, t0, 40 * MS, 700.0, 40);
        assert!(
            limits.iter().all(|&l| l >= 56) && limits[2..].iter().all(|&l| l >= AUTO_START),
            "went below the path's floor: {limits:?}"
        );
        assert!(
            limits[10..].iter().all(|&l| l < 128),
            "a flat rate with growing latency does not stay at the bound: {limits:?}"
        );
    }

    #[test]
    fn a_retry_after_pause_is_not_taken_for_a_slow_path() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Auto { max: 128 }, t0);
        let g = c.generation();
        // Pushback with a 1 s pause: 64 → 32, nothing sent for a second.
        c.on_sample(
            t0,
            g,
            Sample::Overloaded {
                retry_after: Some(Duration::from_secs(1)),
            },
        );
        assert_eq!(c.limit(), 32);
        // 40 ms away, after the pause: answers at 800/s, latency at the path's own. The
        // window began before the pause; its rate must not count the second of silence,
        // or the floor would collapse and the limit not come back.
        let mut now = t0 + Duration::from_secs(1);
        now = answer(
            &mut c,
            now,
            32,
            Duration::from_secs_f64(1.0 / 800.0),
            40 * MS,
        );
        let rate = c.last_rate.unwrap_or(0.0);
        assert!(
            rate > 700.0,
            "the pause was counted in the rate: {rate:.0}/s"
        );
        for _ in 0..30 {
            let n = c.limit();
            now = answer(
                &mut c,
                now,
                n,
                Duration::from_secs_f64(1.0 / 800.0),
                40 * MS,
            );
        }
        assert!(c.limit() > 64, "the limit did not come back: {}", c.limit());
    }

    #[test]
    fn pushback_halves_once_per_generation_and_floors_at_one() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Auto { max: 128 }, t0);
        let g = c.generation();
        c.on_sample(t0, g, Sample::Overloaded { retry_after: None });
        assert_eq!(c.limit(), 32);
        // Requests sent before the cut fail too: they do not cut again.
        for _ in 0..10 {
            c.on_sample(t0, g, Sample::Overloaded { retry_after: None });
        }
        assert_eq!(c.limit(), 32);
        pushed_back(&mut c, t0, 10);
        assert_eq!(c.limit(), 1);
    }

    #[test]
    fn after_pushback_the_limit_comes_back_up_when_the_service_answers_again() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Auto { max: 128 }, t0);
        pushed_back(&mut c, t0, 3);
        assert_eq!(c.limit(), 8);
        distant_path(&mut c, t0, 40 * MS, 60);
        assert_eq!(c.limit(), 128, "additive increase climbs back to the bound");
    }

    #[test]
    fn retry_after_pauses_every_request_until_it_has_passed_and_is_capped() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Fixed(16), t0);
        c.on_sample(
            t0,
            0,
            Sample::Overloaded {
                retry_after: Some(Duration::from_secs(2)),
            },
        );
        assert_eq!(c.paused_until(t0), Some(t0 + Duration::from_secs(2)));
        assert_eq!(c.paused_until(t0 + Duration::from_secs(2)), None);
        // A shorter one later does not shorten it.
        c.on_sample(
            t0 + MS,
            0,
            Sample::Overloaded {
                retry_after: Some(Duration::ZERO),
            },
        );
        assert_eq!(c.paused_until(t0), Some(t0 + Duration::from_secs(2)));
        c.on_sample(
            t0,
            0,
            Sample::Overloaded {
                retry_after: Some(Duration::from_secs(3600)),
            },
        );
        assert_eq!(c.paused_until(t0), Some(t0 + MAX_PAUSE));
    }

    #[test]
    fn a_fixed_number_never_moves() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Fixed(16), t0);
        distant_path(&mut c, t0, 100 * MS, 10);
        assert_eq!(c.limit(), 16);
        c.on_sample(t0, 0, Sample::Overloaded { retry_after: None });
        assert_eq!(c.limit(), 16);
    }

    #[test]
    fn neutral_samples_change_nothing_and_block_answers_count_without_latency() {
        let t0 = Instant::now();
        let mut c = Controller::new(Bound::Auto { max: 128 }, t0);
        for _ in 0..100 {
            c.on_sample(t0, 0, Sample::Neutral);
        }
        assert_eq!(c.limit(), 64);
        let mut now = t0;
        for _ in 0..64 {
            now += MS;
            c.on_sample(now, 0, Sample::Answered { latency: None });
        }
        assert_eq!(
            c.limit(),
            128,
            "answers without latency samples hold latency"
        );
    }
}
