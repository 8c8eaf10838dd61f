//! Whether the remote has answered, and why it did not: what the verdict needs to tell
//! "backed up" from "never reached", "unreachable" and "credentials refused".
//!
//! A push with nothing to send asks the remote nothing, so on its own it proves nothing:
//! until the remote has answered once, such a push is followed by a probe (one listing
//! page), and its outcome is the probe's.

use crate::config::RemoteConfig;
use crate::protocol::{RemoteKind, RemoteProblem, WorkerStatus};
use crate::push::{PushError, PushReport};
use crate::remote::{Remote, RemoteError};

/// `result`, or the probe's failure when the push never asked the remote anything.
pub async fn confirm(
    remote: &dyn Remote,
    result: Result<PushReport, PushError>,
) -> Result<PushReport, PushError> {
    let report = result?;
    let asked = report.uploaded > 0
        || !report.deleted.is_empty()
        || !report.conflicts.is_empty()
        || report.mode == crate::push::PushMode::All;
    if asked {
        return Ok(report);
    }
    match remote.probe().await {
        Ok(_) => Ok(report),
        Err(RemoteError::Auth { message }) => Err(PushError::Auth {
            remote: remote.describe(),
            credential_source: remote.credential_source(),
            detail: message,
            report: Box::new(report),
        }),
        Err(error) => Err(PushError::List {
            remote: remote.describe(),
            error,
        }),
    }
}

/// What one push showed about the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// It answered and accepted the credentials.
    Reached,
    Problem(RemoteProblem),
    /// Nothing learnt (a dry run, a local failure).
    Unknown,
}

impl Reach {
    pub fn of(result: &Result<PushReport, PushError>, dry_run: bool) -> Reach {
        match result {
            Ok(_) if dry_run => Reach::Unknown,
            Ok(_) => Reach::Reached,
            Err(
                PushError::Auth { .. } | PushError::Expired { .. } | PushError::NoPermission { .. },
            ) => Reach::Problem(RemoteProblem::CredentialsRefused),
            Err(PushError::Unreachable { .. }) => Reach::Problem(RemoteProblem::Unreachable),
            Err(PushError::List { error, .. }) => match error {
                RemoteError::Auth { .. } => Reach::Problem(RemoteProblem::CredentialsRefused),
                RemoteError::Unreachable { .. } | RemoteError::Transient { .. } => {
                    Reach::Problem(RemoteProblem::Unreachable)
                }
                _ => Reach::Unknown,
            },
            Err(PushError::State(_)) => Reach::Unknown,
        }
    }

    /// Record it in the status; a problem keeps the time it began.
    pub fn apply(self, s: &mut WorkerStatus) {
        match self {
            Reach::Reached => {
                s.remote_reached = true;
                s.remote_problem = None;
                s.remote_problem_since_unix = None;
            }
            Reach::Problem(p) => {
                if s.remote_problem != Some(p) {
                    s.remote_problem_since_unix = Some(super::worker::unix_now());
                }
                s.remote_problem = Some(p);
            }
            Reach::Unknown => {}
        }
    }
}

/// The kind of remote and its name for people: `Azure (journal/laptop)`.
pub fn describe(remote: &RemoteConfig) -> (RemoteKind, String) {
    match remote {
        RemoteConfig::Azure(location) => {
            let mut place = location.container.clone();
            if !location.prefix.is_empty() {
                place = format!("{place}/{}", location.prefix);
            }
            (RemoteKind::Azure, format!("Azure ({place})"))
        }
        RemoteConfig::Directory {
            path,
            embedded_default: true,
        } => (
            RemoteKind::LocalMirror,
            format!("the local mirror {}", path.display()),
        ),
        RemoteConfig::Directory { path, .. } => (
            RemoteKind::Directory,
            format!("the directory {}", path.display()),
        ),
    }
}
