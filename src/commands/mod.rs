//! Command front ends: each turns a parsed command line into work and an exit code.
//! Library errors become one clear [`CliError`] line here (ripgrep's model).

pub mod config_check;
pub mod config_online;
pub mod conflicts;
pub mod ctl;
pub mod docs;
pub mod global_args;
pub mod history;
pub mod journal_cli;
pub mod metrics;
pub mod prune;
pub mod push;
pub mod restore;
pub mod service;
pub mod verify;

use crate::config::ConfigError;
use crate::filter::FilterError;

pub use crate::exit;
use crate::exit::ExitCode;

/// A failure that ends the command: printed as one line, mapped to an exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
    /// A `--json` command already printed its one JSON object (a partial report, the
    /// daemon's reply) for this failure; [`exit_with`] must not print another.
    pub json_printed: bool,
}

impl CliError {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            json_printed: false,
        }
    }

    /// Listing `remote` failed: refused credentials name where they came from and what to
    /// check (exit 4); anything else is "cannot list" (exit 1).
    pub fn listing(remote: &dyn crate::remote::Remote, error: crate::remote::RemoteError) -> Self {
        match error {
            crate::remote::RemoteError::Auth { message } => CliError::new(
                exit::AUTH,
                format!(
                    "{}: {message}; the credentials came from {}: {}",
                    remote.describe(),
                    remote.credential_source(),
                    crate::push::refusal_hint(&remote.credential_source(), &message)
                ),
            ),
            e => CliError::new(
                exit::FILES_FAILED,
                format!("cannot list {}: {e}", remote.describe()),
            ),
        }
    }

    /// Mark that the failure was already reported as JSON on stdout.
    pub fn json_printed(mut self) -> Self {
        self.json_printed = true;
        self
    }
}

impl From<crate::exit::Failure> for CliError {
    fn from(e: crate::exit::Failure) -> Self {
        CliError::new(e.code, e.message)
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::new(exit::USAGE, e.to_string())
    }
}

impl From<FilterError> for CliError {
    fn from(e: FilterError) -> Self {
        CliError::new(exit::USAGE, e.to_string())
    }
}

/// End the process: print a failure as one scrubbed line prefixed with `program`, and
/// exit with its code. With `json` (the command's `--json`), stdout carries exactly one
/// JSON object whatever happened: a failure that printed none prints
/// `{"ok":false,"code":N,"error":"…"}` there as well.
pub fn exit_with(program: &str, json: bool, result: Result<ExitCode, CliError>) -> ! {
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
