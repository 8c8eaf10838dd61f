//! What a run did and why it stopped: the report every front end prints (`--json` as is),
//! the progress events, and the errors that stop a run as a whole.

use crate::config::OnConflict;
use crate::plan::UploadReason;
use crate::remote::RemoteError;
use crate::state::StateError;
use serde::{Deserialize, Serialize};

/// What one run did; printed by the front ends, `--json` as is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushReport {
    pub mode: PushMode,
    pub dry_run: bool,
    pub force: bool,
    /// Candidate files seen.
    pub scanned: u64,
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub unchanged: u64,
    /// Dry run: what would be uploaded.
    pub would_upload: Vec<PlannedUpload>,
    pub conflicts: Vec<ConflictReport>,
    pub failed: Vec<FileFailure>,
    /// Blobs with no local file (`--all`); never deleted.
    pub remote_only: Vec<String>,
    /// Blobs the include/exclude rules or `.devlogignore` now exclude here (`--all`): the
    /// remote keeps their last version; never deleted.
    #[serde(default)]
    pub remote_excluded: Vec<String>,
    /// Blobs whose stored bytes no longer match the MD5 they were written with (`--all`),
    /// still damaged after this run (no local file to repair them from, a dry run, or
    /// another writer's version).
    #[serde(default)]
    pub corrupt: Vec<String>,
    /// Damaged blobs this run replaced with the local file (the damaged copy kept in
    /// history).
    #[serde(default)]
    pub repaired_corrupt: Vec<String>,
    /// Files that changed while they were uploaded; pushed again next time.
    pub changed_during_upload: Vec<String>,
    /// Files deleted locally that left the current view of the remote (their last
    /// content kept in the history area).
    #[serde(default)]
    pub deleted: Vec<String>,
    /// Dry run: what would be deleted.
    #[serde(default)]
    pub would_delete: Vec<String>,
    /// Deletes the mass-delete guard held: with the last hour's remote deletes, more than
    /// it allows; carried out by a push with `--allow-deletes`.
    #[serde(default)]
    pub held_deletes: Vec<String>,
    /// Why the guard held them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_reason: Option<String>,
    /// Deletes the credentials may not do (a SAS without delete permission): not retried
    /// until new credentials are loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_deletes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_reason: Option<String>,
    /// The container this push created (it did not exist: a new remote, or a typo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_container: Option<String>,
    pub duration_ms: u64,
    /// Requests in flight over the run (remotes across a network only): where the limit
    /// started, its lowest and highest, where it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::remote::limit::LimitReport>,
    /// Two-way: the change mark this push wrote when no one else had moved it since the
    /// daemon's last full pull (nothing new to pull from others up to it).
    #[serde(skip)]
    pub generation: Option<String>,
}

/// Whether a run compared with the remote's listing (`--all`, the daemon's verifying
/// passes) or trusted the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    #[default]
    Incremental,
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedUpload {
    pub path: String,
    pub bytes: u64,
    pub reason: UploadReason,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConflictReport {
    pub path: String,
    pub action: ConflictAction,
    /// Where our version went, for keep-both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
}

/// What the conflict policy did with a path another writer changed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ConflictAction {
    /// Theirs stays at the path; ours went to a conflict copy.
    #[serde(rename = "kept-both")]
    KeptBoth,
    /// Ours replaced theirs (`--on-conflict overwrite`).
    #[serde(rename = "overwritten")]
    Overwritten,
    /// Theirs stays; ours was not uploaded (`--on-conflict skip`).
    #[serde(rename = "skipped")]
    Skipped,
    /// Dry runs: what the policy would do.
    #[serde(rename = "would-kept-both")]
    WouldKeepBoth,
    #[serde(rename = "would-overwritten")]
    WouldOverwrite,
    #[serde(rename = "would-skipped")]
    WouldSkip,
}

impl ConflictAction {
    /// What `policy` does (`dry_run`: would do).
    pub fn of(policy: OnConflict, dry_run: bool) -> Self {
        match (policy, dry_run) {
            (OnConflict::KeepBoth, false) => ConflictAction::KeptBoth,
            (OnConflict::Overwrite, false) => ConflictAction::Overwritten,
            (OnConflict::Skip, false) => ConflictAction::Skipped,
            (OnConflict::KeepBoth, true) => ConflictAction::WouldKeepBoth,
            (OnConflict::Overwrite, true) => ConflictAction::WouldOverwrite,
            (OnConflict::Skip, true) => ConflictAction::WouldSkip,
        }
    }
}

impl std::fmt::Display for ConflictAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileFailure {
    pub path: String,
    pub error: String,
    /// Worth trying again later (the remote failed), as opposed to a local problem.
    #[serde(skip)]
    pub transient: bool,
}

impl PushReport {
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.refused_deletes.is_empty()
    }

    /// The exit code of a run that finished: 1 when any file failed.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        if self.is_clean() {
            crate::exit::OK
        } else {
            crate::exit::FILES_FAILED
        }
    }

    /// Sorted for people and tests, with the run's duration.
    pub(super) fn finished(mut self, started: std::time::Instant) -> Self {
        self.failed.sort_by(|a, b| a.path.cmp(&b.path));
        self.conflicts.sort_by(|a, b| a.path.cmp(&b.path));
        self.changed_during_upload.sort();
        self.deleted.sort();
        self.would_delete.sort();
        self.held_deletes.sort();
        self.refused_deletes.sort();
        self.repaired_corrupt.sort();
        // A damaged blob deleted with its local file is gone from the current view.
        let deleted = &self.deleted;
        self.corrupt.retain(|p| deleted.binary_search(p).is_err());
        self.duration_ms = started.elapsed().as_millis() as u64;
        self
    }
}

/// Progress, as it happens: what the pipeline reports and, as is, what a waiting `ctl push`
/// streams (`{"event":"uploaded","path":…,"bytes":…}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PushEvent {
    Planned {
        files: u64,
        bytes: u64,
    },
    Uploaded {
        path: String,
        bytes: u64,
    },
    Failed {
        path: String,
        error: String,
    },
    /// A [`ConflictReport`] as it happens; `copy` is sent also when there is none.
    Conflict {
        path: String,
        action: ConflictAction,
        copy: Option<String>,
    },
    /// A request for `path` failed in a way that can pass (a timeout, a 503, a lost
    /// connection) and is tried again: said at once, not when the retries run out.
    Retrying {
        path: String,
        error: String,
    },
}

impl From<ConflictReport> for PushEvent {
    fn from(ConflictReport { path, action, copy }: ConflictReport) -> Self {
        PushEvent::Conflict { path, action, copy }
    }
}

/// The error for a refusal of `remote`'s credentials: [`PushError::Expired`] when its SAS is
/// past its expiry, [`PushError::NoPermission`] when the service took them but they lack a
/// permission, else [`PushError::Auth`].
pub fn refused(
    remote: &dyn crate::remote::Remote,
    detail: String,
    report: PushReport,
) -> PushError {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sas = remote.features().sas;
    let expired = sas.and_then(|s| s.expires_unix).filter(|&at| at <= now);
    match expired {
        Some(at) => PushError::Expired {
            remote: remote.describe(),
            credential_source: remote.credential_source(),
            at: time::OffsetDateTime::from_unix_timestamp(at)
                .map(crate::history::rfc3339_seconds)
                .unwrap_or_else(|_| format!("unix time {at}")),
            report: Box::new(report),
        },
        None if detail.contains("AuthorizationPermissionMismatch") => {
            let source = remote.credential_source();
            PushError::NoPermission {
                remote: remote.describe(),
                fix: sas
                    .and_then(|sas| missing_permissions(sas, &source))
                    .unwrap_or_else(|| {
                        format!("the credentials came from {source}: {}", auth_hint(&source))
                    }),
                detail,
                report: Box::new(report),
            }
        }
        None => PushError::Auth {
            remote: remote.describe(),
            credential_source: remote.credential_source(),
            detail,
            report: Box::new(report),
        },
    }
}

/// Errors that stop a run as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "{remote}: {detail}; the credentials came from {credential_source}: {}",
        refusal_hint(credential_source, detail)
    )]
    Auth {
        remote: String,
        credential_source: String,
        detail: String,
        /// What was done before the refusal.
        report: Box<PushReport>,
    },
    /// Refused, and the SAS in use is past its expiry: that is why.
    #[error(
        "{remote} refused the SAS token: it expired at {at} ({credential_source}); make a new one with a later expiry (se) and put it there, then push again"
    )]
    Expired {
        remote: String,
        credential_source: String,
        at: String,
        report: Box<PushReport>,
    },
    /// The service took the credentials, but they lack a permission a push needs (a
    /// read-only SAS): `fix` says which, as `config check --online` does.
    #[error(
        "{remote} accepted the credentials, but a push needs more than they allow ({detail}): {fix}"
    )]
    NoPermission {
        remote: String,
        detail: String,
        /// What the credentials lack and how to give it to them.
        fix: String,
        report: Box<PushReport>,
    },
    #[error(
        "cannot reach {remote} ({detail}); stopped after {pending} file(s) could not be pushed: check remote.url and the network, then push again"
    )]
    Unreachable {
        remote: String,
        detail: String,
        pending: u64,
        report: Box<PushReport>,
    },
    #[error("cannot list {remote}: {error}")]
    List { remote: String, error: RemoteError },
    #[error(transparent)]
    State(#[from] StateError),
}

impl PushError {
    /// The exit code a command ends with.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit;
        match self {
            PushError::Auth { .. } => exit::AUTH,
            PushError::Expired { .. } => exit::CREDENTIALS_EXPIRED,
            PushError::NoPermission { .. } => exit::NO_WRITE_PERMISSION,
            PushError::Unreachable { .. } | PushError::List { .. } => exit::FILES_FAILED,
            PushError::State(_) => exit::USAGE,
        }
    }

    /// What was done before the run stopped, when anything was.
    pub fn partial_report(&self) -> Option<&PushReport> {
        match self {
            PushError::Auth { report, .. }
            | PushError::Expired { report, .. }
            | PushError::NoPermission { report, .. }
            | PushError::Unreachable { report, .. } => Some(report),
            PushError::List { .. } | PushError::State(_) => None,
        }
    }
}

/// What to check after a refusal that said `message`: nothing about the credentials when
/// the service refused this machine's clock.
pub fn refusal_hint(source: &str, message: &str) -> &'static str {
    if crate::remote::is_clock_skew(message) {
        "they are not the problem: the service refuses requests dated by a clock that far off"
    } else {
        auth_hint(source)
    }
}

/// What a SAS lacks of the `racwdl` a push needs, for people ("the SAS allows only sp=rl,
/// without add (a), create (c), write (w) and delete (d); …"), and where to put a new one.
fn missing_permissions(sas: &crate::remote::azure::sas::SasInfo, source: &str) -> Option<String> {
    let missing = sas.missing_for_push();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<String> = missing
        .into_iter()
        .map(|c| format!("{} ({c})", permission_name(c)))
        .collect();
    let without = match names.split_last() {
        None => String::new(),
        Some((last, [])) => format!(", without {last}"),
        Some((last, rest)) => format!(", without {} and {last}", rest.join(", ")),
    };
    Some(format!(
        "the SAS allows only sp={}{without}; devlogd needs racwdl (read, add, create, write, delete, list): make a new one with them and put it in place of this one ({source}), then push again",
        sas.permissions.as_deref().unwrap_or("")
    ))
}

/// A SAS permission letter of the `racwdl` a push needs, in words.
pub fn permission_name(letter: char) -> &'static str {
    match letter {
        'r' => "read",
        'a' => "add",
        'c' => "create",
        'w' => "write",
        'd' => "delete",
        _ => "list",
    }
}

/// What to check, by kind of credential.
pub fn auth_hint(source: &str) -> &'static str {
    if source.contains("Entra ID") {
        "log in (`az login`), or check AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, and give the identity the Storage Blob Data Contributor role on the container"
    } else if source.contains("account key") {
        "check that the key belongs to the account in remote.url and has not been rotated"
    } else {
        "check that the SAS token is valid, not expired, and allows read, add, create, write, delete and list (delete: for deletes and pruning the history)"
    }
}

/// The text of a local read failure.
pub(super) fn read_error(e: &std::io::Error) -> String {
    format!("cannot read: {e}")
}
