//! Control-socket messages, shared by the daemon (`daemon/control.rs`) and the client
//! (`ctl.rs`): newline-delimited JSON, one request per line, versioned.
//!
//! Request:  `{"v":1,"cmd":"push","all":true,"wait":true}`
//! Replies:  zero or more `{"event":…}` lines (a waiting push streams progress), then one
//! final line `{"ok":true,…}` or `{"ok":false,"error":"…","code":N}`.

use crate::push::{PushEvent, PushFlags, PushReport};
use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// Longest request line the daemon reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub cmd: Command,
}

impl Request {
    pub fn new(cmd: Command) -> Self {
        Request { v: VERSION, cmd }
    }
}

/// A control request, declared once: its JSON on the socket, and (through clap) the
/// `devlogd ctl` subcommand that sends it, with that subcommand's help. Fields marked
/// `serde(skip)` never travel: they only say how the client prints the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Whether the journal is backed up (the verdict, first), then state, pending paths, last push, last error, …
    Status {
        /// Print the daemon's status as one JSON object on stdout (also on failure).
        #[arg(long, conflicts_with = "prometheus")]
        #[serde(skip)]
        json: bool,
        /// Print the counters in the Prometheus text format (devlogd_ metrics).
        #[arg(long)]
        #[serde(skip)]
        prometheus: bool,
    },
    /// Push now through the daemon; waits and prints the report unless --no-wait.
    Push {
        #[command(flatten)]
        #[serde(flatten)]
        flags: PushFlags,
        // On the wire: stream progress and the report (the default); false returns once
        // the push is queued.
        /// Return as soon as the push is queued.
        #[arg(long = "no-wait", action = clap::ArgAction::SetFalse)]
        #[serde(default = "yes")]
        wait: bool,
        /// Print the report (with --no-wait: the daemon's answer) as one JSON object on
        /// stdout (also on failure).
        #[arg(long)]
        #[serde(skip)]
        json: bool,
    },
    /// Bring the remote's changes down now (sync.mode = "two-way"), then push what that
    /// leaves to push; waits and prints what came down.
    Pull {
        /// Print the pull's report as one JSON object on stdout (also on failure).
        #[arg(long)]
        #[serde(skip)]
        json: bool,
    },
    /// Stop pushing (changes are still collected).
    Pause,
    // Pause for as long as the connection that asked stays open: the daemon resumes when
    // it closes, however the client ended (a restore killed with SIGKILL included). Sent by
    // `restore`, not a `ctl` subcommand.
    #[command(skip)]
    PauseLease,
    /// Push again, starting with what changed while paused.
    Resume,
    /// Re-read the configuration (like SIGHUP); a bad one is refused and the old one kept.
    Reload,
    /// Stop the daemon gracefully.
    Stop,
}

impl Command {
    /// `ctl status` as `service status` and the tests ask for it.
    pub const STATUS: Command = Command::Status {
        json: false,
        prometheus: false,
    };

    /// Whether the client prints the reply as one JSON object on stdout.
    pub fn json_output(&self) -> bool {
        matches!(
            self,
            Command::Status { json: true, .. }
                | Command::Push { json: true, .. }
                | Command::Pull { json: true }
        )
    }
}

fn yes() -> bool {
    true
}

/// The last line of every reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code the client should end with.
    #[serde(default)]
    pub code: crate::exit::ExitCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<PushReport>>,
    /// `pull`'s report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<Box<crate::pull::PullReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum State {
    #[default]
    Idle,
    Pushing,
    Offline,
    Paused,
    /// A local problem stops pushes (the state index is read-only): `last_error` says
    /// what and how to fix it; changes stay pending and are retried with back-off.
    Error,
    /// The remote answers, but some files could not be pushed (`failed_paths`,
    /// `failed_sample`, `failed_error`): they are retried with back-off and on every pass.
    Retrying,
}

/// The worker's part of `ctl status`, published after every change.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WorkerStatus {
    pub state: State,
    pub root: String,
    pub remote: String,
    pub credential: String,
    pub last_push: Option<LastPush>,
    /// Unix seconds of the last push that finished without error: a timestamp to show;
    /// ages come from `last_success_at` (the wall clock can step back).
    pub last_success_unix: Option<i64>,
    pub last_error: Option<String>,
    pub offline_since_unix: Option<i64>,
    /// Monotonic twins of the timestamps, for ages.
    #[serde(skip)]
    pub last_success_at: Option<tokio::time::Instant>,
    #[serde(skip)]
    pub offline_since_at: Option<tokio::time::Instant>,
    #[serde(skip)]
    pub last_push_at: Option<tokio::time::Instant>,
    #[serde(skip)]
    pub next_retry: Option<tokio::time::Instant>,
    /// Dirty paths waiting in the worker (offline, paused, or failed and retrying).
    pub waiting_paths: usize,
    /// Paths of the push running now: the batch until it is planned, then the files still
    /// to upload (a full pass included).
    pub in_flight_paths: usize,
    /// A full pass is running (it may find more than `in_flight_paths`).
    pub full_pass_running: bool,
    pub pushes: u64,
    pub files_uploaded: u64,
    pub rescans: u64,
    pub watcher_overflows: u64,
    pub files_in_index: u64,
    pub watch_limited: Option<String>,
    /// Paths the daemon failed to push and retries (with back-off and on every full pass)
    /// until they succeed or are gone.
    #[serde(default)]
    pub failed_paths: usize,
    /// The first few of them.
    #[serde(default)]
    pub failed_sample: Vec<String>,
    /// The error of the first of them.
    #[serde(default)]
    pub failed_error: Option<String>,
    /// Local deletes the mass-delete guard holds until a push with `--allow-deletes`.
    #[serde(default)]
    pub held_deletes: usize,
    /// Why the mass-delete guard holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_deletes_reason: Option<String>,
    /// Remote deletes since the daemon started.
    #[serde(default)]
    pub files_deleted: u64,
    /// Local deletes the credentials may not carry out (a SAS without `d`): not retried
    /// until a reload or an explicit push.
    #[serde(default)]
    pub refused_deletes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_deletes_reason: Option<String>,
    /// The permissions the SAS in use says it lacks (`write, create`), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_lacks: Option<String>,
    /// Things the daemon's setup says about itself (a credential in the environment that
    /// shadows the credentials file, an index rebuilt): shown with the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set while the push running now retries requests that failed in a way that can
    /// pass: `retrying since 10:02 UTC: timed out: …`.
    #[serde(default)]
    pub retrying: Option<String>,
    #[serde(default)]
    pub retrying_since_unix: Option<i64>,
    /// The remote for people: `Azure (container/prefix)`, `directory /srv/devlog`.
    #[serde(default)]
    pub remote_label: String,
    /// What the remote is: Azure, a directory, or the built-in mirror on this disk.
    #[serde(default)]
    pub remote_kind: RemoteKind,
    /// The remote answered a request since the daemon started (a push that went
    /// through without contacting it does not count).
    #[serde(default)]
    pub remote_reached: bool,
    /// Why the last attempt could not reach or use the remote, until one succeeds.
    #[serde(default)]
    pub remote_problem: Option<RemoteProblem>,
    /// Unix seconds since `remote_problem` holds (a time to show).
    #[serde(default)]
    pub remote_problem_since_unix: Option<i64>,
    /// When a reload switched to this remote (unix seconds); `None` for the one devlogd
    /// started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_reloaded_unix: Option<i64>,
    /// Blobs the last listing found damaged (bytes that no longer match the MD5 written
    /// with them) and no push has repaired since.
    #[serde(default)]
    pub corrupt: usize,
    /// The first few of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt_sample: Vec<String>,
    /// Paths whose remote version belongs to another writer (the index's conflict flag).
    #[serde(default)]
    pub conflicts: usize,
    /// Files pushed before that the include/exclude rules now leave out: their last
    /// version stays on the remote, later changes are not backed up (as of the last full
    /// pass).
    #[serde(default)]
    pub excluded_in_index: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_sample: Vec<String>,
    /// `sync.mode`: whether the daemon also brings the remote's changes down.
    #[serde(default)]
    pub mode: crate::config::SyncMode,
    /// `[encryption] enabled`: contents and names are encrypted before they leave.
    #[serde(default)]
    pub encrypted: bool,
    /// Two-way mode: `sync.pull_interval_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_interval_s: Option<u64>,
    /// Two-way mode: the last pull pass, once one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pull: Option<LastPull>,
    /// Two-way mode: sync-conflict files in the journal, waiting for the user (as of the
    /// last pull, less those deleted since).
    #[serde(default)]
    pub conflict_files: Vec<WaitingConflict>,
    /// When the SAS token in use expires (its `se` field), unix seconds.
    #[serde(default)]
    pub credential_expires_unix: Option<i64>,
    /// When the oldest path waiting in the worker (or in the push running) became dirty.
    #[serde(skip)]
    pub pending_since_at: Option<tokio::time::Instant>,
    /// Paths taken from the queue's batches since start-up (see `QueueStatus::handed_total`).
    #[serde(skip)]
    pub taken_from_queue: u64,
}

impl WorkerStatus {
    /// What was learnt about the remote (reached, damaged blobs, its problem), for another
    /// remote after a reload.
    pub fn forget_remote(&mut self) {
        self.remote_reached = false;
        self.corrupt = 0;
        self.corrupt_sample.clear();
        self.remote_problem = None;
        self.remote_problem_since_unix = None;
    }
}

/// The last pull pass, as `ctl status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct LastPull {
    /// When it ended (unix seconds).
    pub at_unix: i64,
    pub downloaded: usize,
    pub deleted: usize,
    /// Conflict files it wrote (beside the path both sides changed).
    pub conflict_files: Vec<String>,
    /// Why it did not finish, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A sync-conflict file waiting for the user: another machine's version of `path`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WaitingConflict {
    pub file: String,
    pub path: String,
    /// The host whose version it holds, as its name says.
    pub host: String,
}

impl WaitingConflict {
    /// The waiting conflict file `file`, when the name is one.
    pub fn of(file: &str) -> Option<WaitingConflict> {
        let c = crate::names::parse_sync_conflict(file)?;
        Some(WaitingConflict {
            file: file.to_string(),
            path: c.original,
            host: c.host,
        })
    }
}

/// What kind of place the journal is copied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    #[default]
    Azure,
    /// A directory named in `remote.url` (a NAS mount, another disk).
    Directory,
    /// The built-in mirror (no `remote.url`): a directory on this machine's disk.
    LocalMirror,
}

/// How much of the tree the watcher sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum WatchState {
    #[default]
    #[serde(rename = "ok")]
    Ok,
    /// Inotify limits: part of the tree is scanned on a timer instead.
    #[serde(rename = "limited")]
    Limited,
    /// Directories that cannot be read (`unwatched_dirs`).
    #[serde(rename = "partial")]
    Partial,
    #[serde(rename = "root missing")]
    RootMissing,
}

impl std::fmt::Display for WatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WatchState::Ok => "ok",
            WatchState::Limited => "limited",
            WatchState::Partial => "partial",
            WatchState::RootMissing => "root missing",
        })
    }
}

/// Why the remote could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteProblem {
    /// The service answered 401/403 (or no token could be had).
    CredentialsRefused,
    /// No answer: connection refused, DNS, timeouts, 5xx past the retries.
    Unreachable,
}

/// The one-line answer to "is my journal safe?", first in `ctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub state: VerdictState,
    /// True only when every file is on a remote off this machine (or being sent there
    /// without a problem).
    pub safe: bool,
    pub text: String,
    /// Things that are fine now but will not stay so (a SAS that expires soon).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictState {
    BackedUp,
    BackingUp,
    CredentialsRefused,
    /// The SAS token in use is past its expiry (`se`).
    CredentialsExpired,
    /// The journal root does not exist (deleted, or a volume not mounted).
    RootMissing,
    Unreachable,
    NeverReached,
    Paused,
    HeldDeletes,
    /// The credentials may not delete: local deletes wait for new credentials.
    DeletesRefused,
    FailingFiles,
    /// Blobs damaged at rest on the remote, not repaired yet.
    Corrupt,
    /// Two-way: the last pull failed; other machines' changes are not coming down.
    PullFailing,
    Conflicts,
    LocalMirror,
    LocalError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastPush {
    pub finished_unix: i64,
    pub ok: bool,
    pub full: bool,
    pub uploaded: u64,
    pub unchanged: u64,
    pub failed: usize,
    pub conflicts: usize,
    pub duration_ms: u64,
    /// Files removed from the remote's current view (their last content kept in history).
    #[serde(default)]
    pub deleted: u64,
}

/// `ctl status`: what the daemon is doing, as server and client both read it (a renamed
/// field is a compile error, not a silent 0).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub socket: String,
    #[serde(flatten)]
    pub worker: WorkerStatus,
    /// Paths debouncing in the queue or handed to a busy worker.
    pub queued_paths: usize,
    /// Everything not yet on the remote: queued, waiting to be retried, or in the push
    /// running now.
    pub pending_paths: usize,
    pub pending_oldest_ms: Option<u64>,
    /// Seconds since the last push without failures, from the daemon's monotonic clock
    /// (never negative when the wall clock steps back).
    pub last_success_age_s: Option<i64>,
    /// Seconds since the last push finished (monotonic).
    #[serde(default)]
    pub last_push_age_s: Option<u64>,
    /// Seconds the remote has been unreachable (monotonic).
    #[serde(default)]
    pub offline_for_s: Option<u64>,
    pub watch: WatchState,
    /// Unless ok, what is not watched and what to do.
    pub watch_issue: Option<String>,
    pub unwatched_dirs: usize,
    pub unwatched_dirs_sample: Vec<String>,
    pub next_retry_in_s: Option<u64>,
    /// The verdict, computed by the daemon from everything above.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

impl Reply {
    pub fn ok(message: impl Into<String>) -> Self {
        Reply {
            ok: true,
            error: None,
            code: crate::exit::OK,
            status: None,
            report: None,
            pull: None,
            message: Some(message.into()),
        }
    }

    pub fn error(code: crate::exit::ExitCode, error: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(error.into()),
            code,
            status: None,
            report: None,
            pull: None,
            message: None,
        }
    }

    pub fn with_report(
        code: crate::exit::ExitCode,
        report: &PushReport,
        error: Option<String>,
    ) -> Self {
        Reply {
            ok: error.is_none(),
            error,
            code,
            status: None,
            report: Some(Box::new(report.clone())),
            pull: None,
            message: None,
        }
    }

    pub fn with_pull(
        code: crate::exit::ExitCode,
        report: Option<crate::pull::PullReport>,
        error: Option<String>,
    ) -> Self {
        Reply {
            ok: error.is_none(),
            error,
            code,
            status: None,
            report: None,
            pull: report.map(Box::new),
            message: None,
        }
    }
}

/// One line the daemon sends: an event or the final reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    Event(PushEvent),
    Reply(Reply),
}

/// Why a request line was refused; the text is sent back.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("unsupported protocol version {0} (this daemon speaks {VERSION})")]
    Version(u64),
    #[error("missing protocol version \"v\"")]
    NoVersion,
    #[error("bad request: {0}")]
    Bad(serde_json::Error),
}

/// Parse a request line.
pub fn parse_request(line: &str) -> Result<Request, RequestError> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(RequestError::Json)?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == VERSION as u64 => {}
        Some(v) => return Err(RequestError::Version(v)),
        None => return Err(RequestError::NoVersion),
    }
    serde_json::from_value(value).map_err(RequestError::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_default_to_waiting() {
        let r = parse_request(r#"{"v":1,"cmd":"push","all":true}"#).unwrap();
        assert_eq!(
            r.cmd,
            Command::Push {
                flags: PushFlags {
                    all: true,
                    ..Default::default()
                },
                wait: true,
                json: false,
            }
        );
        let every_flag = Command::Push {
            flags: PushFlags {
                all: true,
                force: true,
                checksum: true,
                dry_run: true,
                on_conflict: Some(crate::config::OnConflict::Overwrite),
                allow_deletes: true,
            },
            wait: false,
            json: false,
        };
        let line = serde_json::to_string(&Request::new(every_flag.clone())).unwrap();
        assert_eq!(parse_request(&line).unwrap().cmd, every_flag, "{line}");
        let line = serde_json::to_string(&Request::new(Command::STATUS)).unwrap();
        assert_eq!(line, r#"{"v":1,"cmd":"status"}"#);
        assert_eq!(parse_request(&line).unwrap().cmd, Command::STATUS);
    }

    #[test]
    fn the_wire_keeps_its_bytes() {
        let push = Request::new(Command::Push {
            flags: PushFlags::default(),
            wait: true,
            json: true,
        });
        assert_eq!(
            serde_json::to_string(&push).unwrap(),
            r#"{"v":1,"cmd":"push","all":false,"force":false,"checksum":false,"dry_run":false,"wait":true}"#
        );
        // Every flag set: the flags come first, then `wait` (before PushFlags was flattened
        // into the request, `wait` came before `on_conflict`; keys are read by name, so
        // either order is one request).
        let every_flag = Command::Push {
            flags: PushFlags {
                all: true,
                force: true,
                checksum: true,
                dry_run: true,
                on_conflict: Some(crate::config::OnConflict::KeepBoth),
                allow_deletes: true,
            },
            wait: false,
            json: false,
        };
        let now = r#"{"v":1,"cmd":"push","all":true,"force":true,"checksum":true,"dry_run":true,"on_conflict":"keep-both","allow_deletes":true,"wait":false}"#;
        let before = r#"{"v":1,"cmd":"push","all":true,"force":true,"checksum":true,"dry_run":true,"wait":false,"on_conflict":"keep-both","allow_deletes":true}"#;
        assert_eq!(
            serde_json::to_string(&Request::new(every_flag.clone())).unwrap(),
            now
        );
        for line in [now, before] {
            assert_eq!(parse_request(line).unwrap().cmd, every_flag, "{line}");
        }
        let conflict = Line::Event(PushEvent::Conflict {
            path: "n.md".into(),
            action: crate::push::ConflictAction::Skipped,
            copy: None,
        });
        assert_eq!(
            serde_json::to_string(&conflict).unwrap(),
            r#"{"event":"conflict","path":"n.md","action":"skipped","copy":null}"#
        );
        let uploaded = Line::Event(PushEvent::Uploaded {
            path: "a.md".into(),
            bytes: 3,
        });
        assert_eq!(
            serde_json::to_string(&uploaded).unwrap(),
            r#"{"event":"uploaded","path":"a.md","bytes":3}"#
        );
    }

    #[test]
    fn malformed_requests_are_explained() {
        for (line, want) in [
            ("not json", "invalid JSON"),
            (r#"{"cmd":"status"}"#, "missing protocol version"),
            (
                r#"{"v":2,"cmd":"status"}"#,
                "unsupported protocol version 2",
            ),
            (r#"{"v":1,"cmd":"explode"}"#, "bad request"),
            (r#"{"v":1,"cmd":"push","al":true}"#, "bad request"),
        ] {
            let e = parse_request(line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn lines_are_told_apart() {
        let ev: Line =
            serde_json::from_str(r#"{"event":"uploaded","path":"a.md","bytes":3}"#).unwrap();
        assert!(matches!(ev, Line::Event(PushEvent::Uploaded { .. })));
        let reply: Line =
            serde_json::from_str(r#"{"ok":true,"code":0,"message":"paused"}"#).unwrap();
        assert!(matches!(reply, Line::Reply(Reply { ok: true, .. })));
    }

    #[test]
    fn a_status_and_a_report_round_trip_with_their_types() {
        let mut status = Status {
            version: "1".into(),
            pid: 7,
            pending_paths: 3,
            watch: WatchState::Ok,
            ..Default::default()
        };
        status.worker.state = State::Offline;
        status.worker.failed_paths = 2;
        status.worker.failed_sample = vec!["a.md".into(), "b.md".into()];
        status.last_push_age_s = Some(4);
        status.worker.files_in_index = 305;
        let mut reply = Reply::ok("status");
        reply.status = Some(Box::new(status));
        let report = PushReport {
            uploaded: 2,
            conflicts: vec![crate::push::ConflictReport {
                path: "n.md".into(),
                action: crate::push::ConflictAction::KeptBoth,
                copy: Some("n.conflict-h-1.md".into()),
            }],
            ..Default::default()
        };
        reply.report = Some(Box::new(report));
        let line = serde_json::to_string(&Line::Reply(reply)).unwrap();
        // The wire keeps the flat field names clients and scripts read.
        for key in [
            r#""state":"offline""#,
            r#""pending_paths":3"#,
            r#""files_in_index":305"#,
            r#""failed_paths":2"#,
            r#""failed_sample":["a.md","b.md"]"#,
            r#""last_push_age_s":4"#,
            r#""action":"kept-both""#,
        ] {
            assert!(line.contains(key), "{key} in {line}");
        }
        let Line::Reply(back) = serde_json::from_str::<Line>(&line).unwrap() else {
            panic!("not a reply: {line}");
        };
        let status = back.status.unwrap();
        assert_eq!(status.worker.state, State::Offline);
        assert_eq!((status.pid, status.pending_paths), (7, 3));
        assert_eq!(status.worker.failed_paths, 2);
        // A daemon from before these fields still answers a newer client.
        let old = r#"{"version":"1","pid":7,"uptime_s":1,"socket":"s","state":"idle","root":"r","remote":"m","credential":"c","last_push":null,"last_success_unix":null,"last_error":null,"offline_since_unix":null,"waiting_paths":0,"in_flight_paths":0,"full_pass_running":false,"pushes":0,"files_uploaded":0,"rescans":0,"watcher_overflows":0,"files_in_index":0,"watch_limited":null,"queued_paths":0,"pending_paths":0,"pending_oldest_ms":null,"last_success_age_s":null,"watch":"ok","watch_issue":null,"unwatched_dirs":0,"unwatched_dirs_sample":[],"next_retry_in_s":null}"#;
        let old: Status = serde_json::from_str(old).unwrap();
        assert_eq!(old.worker.failed_paths, 0);
        let report = back.report.unwrap();
        assert_eq!(report.uploaded, 2);
        assert_eq!(
            report.conflicts[0].action,
            crate::push::ConflictAction::KeptBoth
        );
    }
}
