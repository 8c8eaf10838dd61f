//! The exit codes of every command, in one place: 0 ok, 1 some files failed (or the
//! remote could not be reached), 2 bad usage or configuration, 3 no daemon, 4 the remote
//! refused the credentials, 5 the SAS token has expired, 6 the credentials are accepted
//! but may not write (`push`, `config check --online`), 7 encryption is on and the
//! passphrase is missing or does not unlock the key. Each error type says which it
//! means; the front ends only pass the code on.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitCode {
    #[default]
    Ok,
    FilesFailed,
    Usage,
    NoDaemon,
    Auth,
    /// The SAS token's expiry (`se`) has passed.
    CredentialsExpired,
    /// The credentials are accepted but lack a permission devlogd needs (a read-only SAS).
    NoWritePermission,
    /// Encryption is on and the key cannot be unlocked: no passphrase, or a wrong one.
    Locked,
    /// Stopped by Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted,
}

pub const OK: ExitCode = ExitCode::Ok;
pub const FILES_FAILED: ExitCode = ExitCode::FilesFailed;
pub const USAGE: ExitCode = ExitCode::Usage;
pub const NO_DAEMON: ExitCode = ExitCode::NoDaemon;
pub const AUTH: ExitCode = ExitCode::Auth;
pub const CREDENTIALS_EXPIRED: ExitCode = ExitCode::CredentialsExpired;
pub const NO_WRITE_PERMISSION: ExitCode = ExitCode::NoWritePermission;
pub const LOCKED: ExitCode = ExitCode::Locked;
pub const INTERRUPTED: ExitCode = ExitCode::Interrupted;

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::FilesFailed => 1,
            ExitCode::Usage => 2,
            ExitCode::NoDaemon => 3,
            ExitCode::Auth => 4,
            ExitCode::CredentialsExpired => 5,
            ExitCode::NoWritePermission => 6,
            ExitCode::Locked => 7,
            ExitCode::Interrupted => 130,
        }
    }

    /// The code a daemon sent; an unknown one is a usage problem of this client.
    pub fn from_code(code: i32) -> ExitCode {
        match code {
            0 => ExitCode::Ok,
            1 => ExitCode::FilesFailed,
            3 => ExitCode::NoDaemon,
            4 => ExitCode::Auth,
            5 => ExitCode::CredentialsExpired,
            6 => ExitCode::NoWritePermission,
            7 => ExitCode::Locked,
            130 => ExitCode::Interrupted,
            _ => ExitCode::Usage,
        }
    }
}

/// On the control socket an exit code travels as its number.
impl Serialize for ExitCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.code())
    }
}

impl<'de> Deserialize<'de> for ExitCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ExitCode::from_code(i32::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_as_numbers() {
        for c in [
            OK,
            FILES_FAILED,
            USAGE,
            NO_DAEMON,
            AUTH,
            CREDENTIALS_EXPIRED,
            NO_WRITE_PERMISSION,
            LOCKED,
            INTERRUPTED,
        ] {
            assert_eq!(ExitCode::from_code(c.code()), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, c.code().to_string());
            assert_eq!(serde_json::from_str::<ExitCode>(&json).unwrap(), c);
        }
    }
}

/// A failure that ends a command or the daemon: one line for people, and the exit code.
/// The one error type at the edge: the library's own layers (opening the pipeline, the
/// daemon) return it, every front end returns it, and `commands::exit_with` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
    /// A `--json` command already printed its one JSON object (a partial report, the
    /// daemon's reply) for this failure; nothing must print another.
    pub json_printed: bool,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            json_printed: false,
        }
    }

    /// Mark that the failure was already reported as JSON on stdout.
    pub fn json_printed(mut self) -> Self {
        self.json_printed = true;
        self
    }

    /// A configuration or usage problem (exit 2).
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure::new(USAGE, message.to_string())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
