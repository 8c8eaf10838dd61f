//! Command front ends: each turns a parsed command line into work and an exit code.
//! Library errors become one clear [`CliError`] line here (ripgrep's model).

pub mod config_check;
pub mod history;
pub mod prune;
pub mod push;
pub mod restore;
pub mod verify;

use crate::config::{Config, ConfigError};
use crate::filter::{Filter, FilterError};
use crate::remote::RemoteError;

/// Exit codes (DESIGN.md): 0 ok, 1 some files failed, 2 usage/config, 3 no daemon,
/// 4 credentials refused.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FILES_FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NO_DAEMON: i32 = 3;
    pub const AUTH: i32 = 4;
}

/// A failure that ends the command: printed as one line, mapped to an exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
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
/// exit with its code.
pub fn exit_with(program: &str, result: Result<i32, CliError>) -> ! {
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: {}", crate::redact::scrub(&e.message));
            e.code
        }
    };
    std::process::exit(code)
}

/// Errors building a remote are configuration problems (missing credentials, bad URL).
pub fn remote_setup_error(e: RemoteError) -> CliError {
    CliError::new(exit::USAGE, e.to_string())
}

/// The filter for a configuration (reads the root's `.devlogignore`).
pub fn filter_for(config: &Config) -> Result<Filter, CliError> {
    Ok(Filter::new(
        &config.root,
        &config.sync.include,
        &config.sync.exclude,
    )?)
}

/// A missing root is a setup problem, said once with the fix.
pub fn require_root(config: &Config) -> Result<(), CliError> {
    if config.root.is_dir() {
        return Ok(());
    }
    let where_set = if config.file_exists {
        format!("set `root` in {}", config.file.display())
    } else {
        format!("set `root` in a config file at {}", config.file.display())
    };
    Err(CliError::new(
        exit::USAGE,
        format!(
            "the journal root {} does not exist: create it (mkdir -p {}) or {where_set}",
            config.root.display(),
            config.root.display()
        ),
    ))
}

pub use crate::machine::hostname;
