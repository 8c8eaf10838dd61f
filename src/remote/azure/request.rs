//! The one way a request reaches the service: [`AzureRemote::send`] holds a permit of the
//! limiter for one attempt, gives it a time limit ([`within`]), and tells the limiter what
//! the result says about the path. Callers read the service's answer, error answers
//! included (a 404 to a head is an answer), and map what is left with [`map_error`].

use super::AzureRemote;
use super::errors::{map_error_ref, timed_out};
use crate::remote::RemoteError;
use crate::remote::limit::Outcome;
use azure_core::error::ErrorKind;
use std::future::Future;
use std::time::Duration;

#[cfg(doc)]
use super::errors::map_error;

/// What an attempt's duration says: a latency sample, or nothing (a large block or a
/// download is mostly transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timing {
    Sample,
    Transfer,
}

impl AzureRemote {
    /// One request attempt under a permit, answered within `limit` or a retried
    /// "timed out"; returns the service's answer, success or error.
    pub(super) async fn send<T>(
        &self,
        limit: Duration,
        timing: Timing,
        request: impl Future<Output = azure_core::Result<T>>,
    ) -> Result<azure_core::Result<T>, RemoteError> {
        self.under_permit(timing, within(limit, request), answer_outcome)
            .await
    }

    /// `work` under one permit of the limiter, told how it went by `outcome` (a download
    /// holds its permit while its body streams in, and is sorted as a whole).
    pub(super) async fn under_permit<R>(
        &self,
        timing: Timing,
        work: impl Future<Output = R>,
        outcome: fn(&R) -> Outcome,
    ) -> R {
        let permit = self.limiter.acquire().await;
        let result = work.await;
        permit.finish(outcome(&result), timing == Timing::Sample);
        result
    }
}

/// `request` given `limit` to finish; running out of time is an unreachable service.
pub(super) async fn within<T>(
    limit: Duration,
    request: impl Future<Output = T>,
) -> Result<T, RemoteError> {
    tokio::time::timeout(limit, request).await.map_err(|_| {
        tracing::debug!(
            limit_s = limit.as_secs(),
            "no answer from the service in time"
        );
        timed_out(limit)
    })
}

/// What one attempt says about the path: no answer in time, pushback and connection
/// failures slow the limiter down; any other answer (404, 412, 403, …) is an answer — the
/// path carried it promptly, whatever it says; an attempt that never reached the service
/// (no Entra ID token) says nothing about the path.
fn answer_outcome<T>(attempt: &Result<azure_core::Result<T>, RemoteError>) -> Outcome {
    let error = match attempt {
        Err(_) => return Outcome::Overloaded { retry_after: None },
        Ok(Ok(_)) => return Outcome::Answered,
        Ok(Err(e)) => e,
    };
    match error.kind() {
        ErrorKind::HttpResponse { status, .. }
            if matches!(u16::from(*status), 408 | 429 | 500..=599) =>
        {
            match map_error_ref(error) {
                RemoteError::Transient { retry_after, .. } => Outcome::Overloaded { retry_after },
                _ => Outcome::Overloaded { retry_after: None },
            }
        }
        ErrorKind::Connection | ErrorKind::Io => Outcome::Overloaded { retry_after: None },
        ErrorKind::HttpResponse { .. } => Outcome::Answered,
        // No answer at all (an Entra ID token not had, a request not built).
        _ => Outcome::Neutral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::StatusCode;

    fn http(status: StatusCode) -> Result<azure_core::Result<()>, RemoteError> {
        Ok(Err(azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status,
                error_code: None,
                raw_response: None,
            },
            "answer",
        )))
    }

    #[test]
    fn the_limiter_hears_pushback_answers_and_silence_apart() {
        let overloaded = |o: Outcome| matches!(o, Outcome::Overloaded { .. });
        assert!(matches!(answer_outcome(&Ok(Ok(()))), Outcome::Answered));
        for status in [
            StatusCode::Forbidden,
            StatusCode::NotFound,
            StatusCode::PreconditionFailed,
        ] {
            assert!(
                matches!(answer_outcome(&http(status)), Outcome::Answered),
                "{status}"
            );
        }
        for status in [StatusCode::TooManyRequests, StatusCode::ServiceUnavailable] {
            assert!(overloaded(answer_outcome(&http(status))), "{status}");
        }
        let timed_out: Result<azure_core::Result<()>, RemoteError> =
            Err(timed_out(Duration::from_secs(1)));
        assert!(overloaded(answer_outcome(&timed_out)));
        let refused = Ok(Err(azure_core::Error::with_message(
            ErrorKind::Io,
            "refused",
        )));
        assert!(overloaded(answer_outcome::<()>(&refused)));
        let no_token = Ok(Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            "no token",
        )));
        assert!(matches!(answer_outcome::<()>(&no_token), Outcome::Neutral));
    }
}
