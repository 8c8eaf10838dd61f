//! How long one try of a request may take: long enough for a slow link to carry the body,
//! short enough that a service that accepts and never answers is noticed in seconds, not
//! minutes (a 1 KiB Put Blob gets 10 s, a 4 MiB block about 2 minutes). A try that runs
//! out is a transient "timed out" error: retried, and reported at once.

use std::time::Duration;

/// Connecting and being answered, for a request whose body takes no time to send.
pub const ANSWER: Duration = Duration::from_secs(10);
/// The slowest link a body is expected to cross: hotel Wi-Fi shared by a few transfers.
const SLOWEST_BYTES_PER_S: u64 = 32 * 1024;
/// A listing page (up to 5,000 names with their properties, about 2 MiB of XML).
pub const LIST_PAGE: Duration = for_body(2 * 1024 * 1024);
/// The next chunk of a download's body, or a server-side copy within one account.
pub const SLOW_ANSWER: Duration = Duration::from_secs(60);

/// One try of a request sending `bytes` of body.
pub const fn for_body(bytes: u64) -> Duration {
    Duration::from_secs(ANSWER.as_secs() + bytes / SLOWEST_BYTES_PER_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_get_seconds_and_blocks_their_transfer_time() {
        assert_eq!(for_body(1024), Duration::from_secs(10));
        assert_eq!(for_body(4 * 1024 * 1024), Duration::from_secs(138));
        assert!(LIST_PAGE > ANSWER);
    }
}
