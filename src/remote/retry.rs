//! Retries for transient remote errors: exponential back-off with jitter, honouring
//! `Retry-After`. Only transient errors ([`RemoteError::is_transient`]) are retried; conflicts, auth failures and
//! permanent errors return at once. Delays are computed by a pure function so they are
//! unit-tested without sleeping.

use super::RemoteError;
use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Upper bound for one computed delay.
    pub max_delay: Duration,
    /// Upper bound for a server's `Retry-After`.
    pub max_retry_after: Duration,
    /// Total tries, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_attempts: 5,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Delay after failure number `failures` (1 = the first try failed). `jitter` in
    /// [0, 1) picks a point in the upper half of the exponential step ("equal jitter"),
    /// so concurrent uploads that failed together do not retry together.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max_delay);
        let jittered = exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        match retry_after {
            Some(ra) => ra.min(self.max_retry_after).max(jittered),
            None => jittered,
        }
    }

    /// Whether to try again after failure number `failures` with `error`.
    pub fn should_retry(&self, failures: u32, error: &RemoteError) -> bool {
        error.is_transient() && failures < self.max_attempts
    }

    /// Run `op` until it succeeds, fails for good, or the attempts are used up.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RemoteError>>,
    {
        self.run_observed(op, |_| {}).await
    }

    /// [`run`](Self::run), telling `on_retry` about each failure that is tried again
    /// (so a hung service is reported at its first timeout, not after the last).
    pub async fn run_observed<T, F, Fut>(
        &self,
        mut op: F,
        on_retry: impl Fn(&RemoteError),
    ) -> Result<T, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RemoteError>>,
    {
        let mut failures = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    failures += 1;
                    if !self.should_retry(failures, &e) {
                        return Err(e);
                    }
                    let retry_after = match &e {
                        RemoteError::Transient { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    on_retry(&e);
                    let delay = self.delay(failures, retry_after, rand::random::<f64>());
                    tracing::debug!(error = %e, failures, ?delay, "transient error, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::format_description::well_known::Rfc2822;
    let when = time::OffsetDateTime::parse(value, &format).ok()?;
    let now = time::OffsetDateTime::now_utc();
    let secs = (when - now).whole_seconds().max(0) as u64;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient(retry_after: Option<Duration>) -> RemoteError {
        RemoteError::Transient {
            message: "503".into(),
            retry_after,
        }
    }

    #[test]
    fn delays_grow_exponentially_and_are_capped() {
        let p = RetryPolicy::default();
        let ms = |f, j| p.delay(f, None, j).as_millis();
        assert_eq!(ms(1, 1.0), 250);
        assert_eq!(ms(2, 1.0), 500);
        assert_eq!(ms(3, 1.0), 1000);
        assert_eq!(ms(1, 0.0), 125, "jitter keeps at least half the step");
        assert_eq!(ms(30, 1.0), 30_000, "capped at max_delay");
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(60)
        );
        // A Retry-After shorter than our back-off does not shorten it.
        assert_eq!(
            p.delay(5, Some(Duration::from_secs(0)), 1.0),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let p = RetryPolicy::default();
        assert!(p.should_retry(1, &transient(None)));
        assert!(!p.should_retry(5, &transient(None)), "attempts used up");
        assert!(!p.should_retry(1, &RemoteError::Conflict));
        assert!(!p.should_retry(
            1,
            &RemoteError::Auth {
                message: "403".into()
            }
        ));
        assert!(!p.should_retry(
            1,
            &RemoteError::Permanent {
                message: "400".into()
            }
        ));
    }

    #[test]
    fn parses_retry_after_forms() {
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_transient_then_succeeds() {
        let p = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let r = p
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(transient(None))
                } else {
                    Ok(42)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn run_gives_up_after_max_attempts_and_stops_on_auth() {
        let p = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = p
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient(None))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = p
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(RemoteError::Auth {
                    message: "401".into(),
                })
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
