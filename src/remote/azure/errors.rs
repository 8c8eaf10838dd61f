//! Azure's failures as [`RemoteError`]s: an SDK or HTTP error sorted into retry,
//! conflict, credentials or permanent (rclone's `shouldRetry`), its text scrubbed, a
//! service's error body cut to status, code and a short message.

use crate::redact::scrub;
use crate::remote::RemoteError;
use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_core::http::headers::HeaderName;
use std::time::Duration;

/// A failure of ours while building a request, as an SDK error.
pub(super) fn sdk_error(e: RemoteError) -> azure_core::Error {
    azure_core::Error::with_message(ErrorKind::Other, e.to_string())
}

pub(super) fn timed_out(limit: Duration) -> RemoteError {
    RemoteError::Unreachable {
        message: format!(
            "timed out: no answer from the service within {} s",
            limit.as_secs()
        ),
    }
}

pub(super) fn permanent_url(e: url::ParseError) -> RemoteError {
    RemoteError::Permanent {
        message: format!("cannot build a request URL: {e}"),
    }
}

/// A copy refused because its destination exists (If-None-Match: * on the destination).
pub(super) fn is_destination_taken(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, error_code, .. }
        if (*status == StatusCode::Conflict && error_code.as_deref() == Some("BlobAlreadyExists"))
            || (*status == StatusCode::PreconditionFailed
                && error_code.as_deref() == Some("TargetConditionNotMet")))
}

pub(super) fn is_permission_mismatch(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, error_code: Some(code), .. }
        if *status == StatusCode::Forbidden && code == "AuthorizationPermissionMismatch")
}

pub(super) fn is_container_not_found(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, error_code: Some(code), .. }
        if *status == StatusCode::NotFound && code == "ContainerNotFound")
}

/// Sort an SDK error into retry / conflict / auth / permanent, scrubbing its text.
pub fn map_error(e: azure_core::Error) -> RemoteError {
    map_error_ref(&e)
}

pub(super) fn map_error_ref(e: &azure_core::Error) -> RemoteError {
    let mut message = scrub(&error_chain(e)).into_owned();
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let code = error_code.as_deref().unwrap_or("");
            // Of a service's error body keep only the status, the code and a short message:
            // a body may echo parts of the request (a signature without `sig=` in front).
            let detail = raw_response
                .as_ref()
                .and_then(|r| service_message(r.body()))
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            message = scrub(&format!("HTTP {} {code}{detail}", u16::from(*status))).into_owned();
            let retry_after = raw_response
                .as_ref()
                .and_then(|r| {
                    r.headers()
                        .get_optional_str(&HeaderName::from_static("retry-after"))
                })
                .and_then(crate::remote::retry::parse_retry_after);
            let status_num = u16::from(*status);
            let skew = raw_response.as_ref().and_then(|r| {
                clock_off_by(
                    r.headers()
                        .get_optional_str(&HeaderName::from_static("date")),
                )
            });
            match status_num {
                412 => RemoteError::Conflict,
                409 if code == "BlobAlreadyExists" => RemoteError::Conflict,
                // A request signed with a skewed clock ("Request date header too old"):
                // name the clock, not the key.
                401 | 403 if skew.is_some() && code != "AuthorizationPermissionMismatch" => {
                    RemoteError::Auth {
                        message: skew
                            .map(crate::remote::clock_skew_message)
                            .unwrap_or_default(),
                    }
                }
                403 if code == "AuthorizationPermissionMismatch" => RemoteError::Auth {
                    message: format!(
                        "the credentials lack a permission this request needs (HTTP 403 {code})"
                    ),
                },
                401 | 403 => RemoteError::Auth {
                    message: format!(
                        "the service refused the credentials (HTTP {status_num} {code})"
                    ),
                },
                408 | 429 | 500..=599 => RemoteError::Transient {
                    message,
                    retry_after,
                },
                _ => RemoteError::Permanent { message },
            }
        }
        ErrorKind::Connection | ErrorKind::Io => RemoteError::Unreachable {
            message: root_cause(e),
        },
        ErrorKind::Credential => RemoteError::Auth {
            message: format!(
                "could not get an Entra ID token: {}",
                token_failure(&message)
            ),
        },
        _ => RemoteError::Permanent {
            message: bounded(&message, 300),
        },
    }
}

/// `text` as one line of at most `max` characters, shown as names are
/// ([`crate::redact::printable`]): what a service sent (a body quoted in a parser's error)
/// never reaches a terminal raw.
pub(super) fn bounded(text: &str, max: usize) -> String {
    let cut: String = text.chars().take(max).collect();
    let more = if text.chars().nth(max).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", crate::redact::printable(&cut))
}

/// How far this machine's clock is from a service whose answer carried `date`, when that is
/// more than a signed request may be off (Azure refuses beyond 15 minutes; past 5 the clock
/// is the likely cause of a refusal).
fn clock_off_by(date: Option<&str>) -> Option<time::Duration> {
    let service = crate::remote::parse_http_date(date?)?;
    let off = time::OffsetDateTime::now_utc() - service;
    (off.abs() > time::Duration::minutes(5)).then_some(off)
}

/// The `<Message>` of a service error body: first line only, control characters removed,
/// at most 200 characters.
fn service_message(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Message>")? + "<Message>".len();
    let end = text[start..].find("</Message>")? + start;
    let first_line = text[start..end].lines().next().unwrap_or("").trim();
    let clean: String = first_line
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// The SDK's multi-line credential-chain error as one line, without the boilerplate.
fn token_failure(message: &str) -> String {
    let mut reasons: Vec<&str> = message
        .lines()
        .filter_map(|l| l.split(" - ").nth(1).or(Some(l)))
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Multiple errors")
                && !l.starts_with("To troubleshoot")
                && !l.contains("authentication failed.")
        })
        .collect();
    reasons.dedup();
    if reasons.is_empty() {
        message.lines().next().unwrap_or("").to_string()
    } else {
        reasons.join("; ")
    }
}

/// The innermost cause ("Connection refused (os error 111)"), scrubbed: what a user can act on.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    scrub(&last).into_owned()
}

/// The error and its sources on one line (reqwest hides the useful part in `source()`).
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bounded_first_line_of_a_service_message_is_kept() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>InvalidQueryParameterValue</Code><Message>Value for one of the query parameters specified in the request URI is invalid.\nRequestId:1\nTime:2026</Message><QueryParameterName>sig</QueryParameterName><QueryParameterValue>c2VjcmV0</QueryParameterValue></Error>";
        assert_eq!(
            service_message(body).as_deref(),
            Some("Value for one of the query parameters specified in the request URI is invalid.")
        );
        assert_eq!(service_message(b"not xml"), None);
        let long = format!("<Message>{}\u{1b}</Message>", "x".repeat(500));
        assert_eq!(service_message(long.as_bytes()).unwrap().len(), 200);
    }

    #[test]
    fn text_from_the_service_is_one_bounded_escaped_line() {
        assert_eq!(bounded("a\nb\u{1b}[2J", 100), "a\\nb\\u{1b}[2J");
        assert_eq!(bounded("a\u{202e}b", 100), "a\\u{202e}b");
        assert_eq!(
            bounded(&"x".repeat(500), 10),
            format!("{}…", "x".repeat(10))
        );
    }
}
