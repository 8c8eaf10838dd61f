//! `devlogd ctl status --json`, typed: the fields tests read, read from the binary's output
//! (never from devlogd's own types, so a renamed or retyped field fails here, loudly, once).
//! A field a test reads once can still be reached by name (`status["field"]`), and a status
//! prints as its JSON in assertion messages.

use serde::Deserialize;
use std::fmt;
use std::time::Duration;

use super::daemon::run_as;
use super::{TestEnv, poll_until};

/// What `ctl status --json` says (the fields tests use).
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// `idle`, `pushing`, `offline`, `paused`, …
    pub state: String,
    pub pending_paths: u64,
    pub queued_paths: u64,
    pub waiting_paths: u64,
    pub pushes: u64,
    pub files_uploaded: u64,
    pub files_in_index: u64,
    pub rescans: u64,
    pub watcher_overflows: u64,
    #[serde(default)]
    pub failed_paths: u64,
    #[serde(default)]
    pub failed_sample: Vec<String>,
    #[serde(default)]
    pub held_deletes: u64,
    #[serde(default)]
    pub refused_deletes: u64,
    pub last_error: Option<String>,
    pub last_success_age_s: Option<i64>,
    /// `ok`, `limited`, `partial` or `root missing`.
    pub watch: String,
    pub watch_issue: Option<String>,
    pub verdict: Verdict,
    /// The whole answer, for fields read by name and for messages.
    #[serde(skip)]
    json: serde_json::Value,
}

/// The one-line answer to "is my journal safe?" inside a status.
#[derive(Debug, Clone, Deserialize)]
pub struct Verdict {
    /// `backed_up`, `paused`, `held_deletes`, … (snake_case).
    pub state: String,
    pub safe: bool,
    pub text: String,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Status {
    /// Parses `ctl status --json`'s output, with the output in the panic when it does not fit.
    pub fn parse(stdout: &str) -> Status {
        let json: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("ctl status --json is not JSON ({e}): {stdout}"));
        let mut status: Status = serde_json::from_value(json.clone()).unwrap_or_else(|e| {
            panic!("ctl status --json does not fit the tests' Status ({e}): {json:#}")
        });
        status.json = json;
        status
    }

    /// Whether the answer has `key` at all (a null value counts).
    pub fn has(&self, key: &str) -> bool {
        self.json.get(key).is_some()
    }

    /// Idle with nothing pending.
    pub fn settled(&self) -> bool {
        self.state == "idle" && self.pending_paths == 0
    }
}

/// A field the typed struct does not name, as JSON (`Null` when absent).
impl std::ops::Index<&str> for Status {
    type Output = serde_json::Value;
    fn index(&self, key: &str) -> &serde_json::Value {
        &self.json[key]
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.json, f)
    }
}

/// `ctl status --json` as `uid` (this user when `None`); it must succeed.
pub fn status_as(env: &TestEnv, uid: Option<u32>) -> Status {
    let out = run_as(env, uid, &["ctl", "status", "--json"]);
    out.assert_code(0);
    Status::parse(&out.stdout)
}

/// `ctl status --json` as this user.
pub fn status(env: &TestEnv) -> Status {
    status_as(env, None)
}

/// Idle with nothing pending, as `uid` sees it.
pub fn settled_as(env: &TestEnv, uid: Option<u32>) -> bool {
    status_as(env, uid).settled()
}

/// Idle with nothing pending, as this user sees it.
pub fn settled(env: &TestEnv) -> bool {
    settled_as(env, None)
}

/// The verdict's one line in a status.
pub fn verdict(s: &Status) -> String {
    s.verdict.text.clone()
}

/// Polls until the verdict's state is `state` (snake_case); that status. Panics with the last
/// status after `wait`.
pub fn until_verdict(env: &TestEnv, state: &str, wait: Duration) -> Status {
    let mut last = None;
    poll_until(wait, || {
        let s = status(env);
        let done = s.verdict.state == state;
        last = Some(s.clone());
        done.then_some(s)
    })
    .unwrap_or_else(|| {
        let last = last.map_or_else(|| "none".to_string(), |s| format!("{s:#}"));
        panic!("verdict never became {state}; last status {last}")
    })
}
