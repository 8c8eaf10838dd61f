//! Command front ends: each turns a parsed command line into work and an exit code.
//! Library errors become one clear [`Failure`] line here (ripgrep's model).

pub mod config_check;
pub mod config_init;
pub mod config_online;
pub mod conflicts;
pub mod ctl;
pub mod docs;
pub mod global_args;
pub mod history;
pub mod journal_cli;
pub mod journal_path;
pub mod key;
pub mod man_sections;
pub mod metrics;
pub mod prune;
pub mod pull;
pub mod push;
pub mod resolve;
pub mod restore;
pub mod service;
pub mod verify;

use crate::config::ConfigError;
use crate::filter::FilterError;

pub use crate::exit;
use crate::exit::ExitCode;
pub use crate::exit::Failure;

/// The runtime of a one-shot command (the daemon builds its own, multi-threaded).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot start the runtime: {e}")))
}

/// Listing `remote` failed: refused credentials name where they came from and what to
/// check (exit 4); anything else is "cannot list" (exit 1).
pub fn listing_failure(
    remote: &dyn crate::remote::Remote,
    error: crate::remote::RemoteError,
) -> Failure {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = (remote.features().sas)
        .and_then(|s| s.expires_unix)
        .filter(|&at| at <= now);
    match error {
        // Refused because the SAS is past its expiry: said as push says it (exit 5).
        crate::remote::RemoteError::Auth { .. } if let Some(at) = expired => Failure::new(
            exit::CREDENTIALS_EXPIRED,
            format!(
                "{} refused the SAS token: it expired at {} ({}); make a new one with a later expiry (se) and put it there",
                remote.describe(),
                time::OffsetDateTime::from_unix_timestamp(at)
                    .map(crate::history::rfc3339_seconds)
                    .unwrap_or_else(|_| format!("unix time {at}")),
                remote.credential_source()
            ),
        ),
        crate::remote::RemoteError::Auth { message } => Failure::new(
            exit::AUTH,
            format!(
                "{}: {message}; the credentials came from {}: {}",
                remote.describe(),
                remote.credential_source(),
                crate::push::refusal_hint(&remote.credential_source(), &message)
            ),
        ),
        e => Failure::new(
            exit::FILES_FAILED,
            format!("cannot list {}: {e}", remote.describe()),
        ),
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::new(exit::USAGE, e.to_string())
    }
}

impl From<FilterError> for Failure {
    fn from(e: FilterError) -> Self {
        Failure::new(exit::USAGE, e.to_string())
    }
}

/// End the process: print a failure as one scrubbed line prefixed with `program`, and
/// exit with its code. With `json` (the command's `--json`), stdout carries exactly one
/// JSON object whatever happened: a failure that printed none prints
/// `{"ok":false,"code":N,"error":"…"}` there as well.
pub fn exit_with(program: &str, json: bool, result: Result<ExitCode, Failure>) -> ! {
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let message = crate::redact::scrub(&e.message);
            if json && !e.json_printed {
                println!("{}", json_error(e.code, &message));
            }
            eprintln!("{program}: {}", crate::redact::printable_lines(&message));
            e.code
        }
    };
    std::process::exit(code.code())
}

/// One value as the single JSON object `--json` prints.
pub fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The JSON object a `--json` command prints when it fails without a report.
pub fn json_error(code: ExitCode, message: &str) -> serde_json::Value {
    serde_json::json!({ "ok": false, "code": code.code(), "error": message })
}

pub use crate::machine::hostname;
