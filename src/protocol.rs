//! Control-socket messages, shared by the daemon (`daemon/control.rs`) and the client
//! (`ctl.rs`): newline-delimited JSON, one request per line, versioned.
//!
//! Request:  `{"v":1,"cmd":"push","all":true,"wait":true}`
//! Replies:  zero or more `{"event":…}` lines (a waiting push streams progress), then one
//! final line `{"ok":true,…}` or `{"ok":false,"error":"…","code":N}`.

use crate::push::{ConflictReport, PushEvent, PushReport};
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    Status,
    Push {
        #[serde(default)]
        all: bool,
        #[serde(default)]
        force: bool,
        /// Hash every file instead of trusting size and times.
        #[serde(default)]
        checksum: bool,
        #[serde(default)]
        dry_run: bool,
        /// Stream progress and the report (default); false returns once queued.
        #[serde(default = "yes")]
        wait: bool,
        /// Overrides `sync.on_conflict` for this push.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_conflict: Option<crate::config::OnConflict>,
        /// Carry out deletes the mass-delete guard holds.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_deletes: bool,
    },
    Pause,
    Resume,
    Reload,
    Stop,
}

fn yes() -> bool {
    true
}

/// A progress line while a push runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
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
    Conflict {
        path: String,
        action: crate::push::ConflictAction,
        copy: Option<String>,
    },
}

impl From<PushEvent> for Event {
    fn from(e: PushEvent) -> Self {
        match e {
            PushEvent::Planned { files, bytes } => Event::Planned { files, bytes },
            PushEvent::Uploaded { path, bytes } => Event::Uploaded { path, bytes },
            PushEvent::Failed { path, error } => Event::Failed { path, error },
            PushEvent::Conflict(ConflictReport { path, action, copy }) => {
                Event::Conflict { path, action, copy }
            }
        }
    }
}

impl From<Event> for PushEvent {
    fn from(e: Event) -> Self {
        match e {
            Event::Planned { files, bytes } => PushEvent::Planned { files, bytes },
            Event::Uploaded { path, bytes } => PushEvent::Uploaded { path, bytes },
            Event::Failed { path, error } => PushEvent::Failed { path, error },
            Event::Conflict { path, action, copy } => {
                PushEvent::Conflict(ConflictReport { path, action, copy })
            }
        }
    }
}

/// The last line of every reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code the client should end with.
    #[serde(default)]
    pub code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<PushReportWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A push report as it crosses the socket (the same fields `push --json` prints).
pub type PushReportWire = serde_json::Value;

impl Reply {
    pub fn ok(message: impl Into<String>) -> Self {
        Reply {
            ok: true,
            error: None,
            code: 0,
            status: None,
            report: None,
            message: Some(message.into()),
        }
    }

    pub fn error(code: i32, error: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(error.into()),
            code,
            status: None,
            report: None,
            message: None,
        }
    }

    pub fn with_report(code: i32, report: &PushReport, error: Option<String>) -> Self {
        Reply {
            ok: error.is_none(),
            error,
            code,
            status: None,
            report: serde_json::to_value(report).ok(),
            message: None,
        }
    }
}

/// One line the daemon sends: an event or the final reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    Event(Event),
    Reply(Reply),
}

/// Parse a request line, with an error message fit to send back.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == VERSION as u64 => {}
        Some(v) => {
            return Err(format!(
                "unsupported protocol version {v} (this daemon speaks {VERSION})"
            ));
        }
        None => return Err("missing protocol version \"v\"".into()),
    }
    serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))
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
                all: true,
                force: false,
                checksum: false,
                dry_run: false,
                wait: true,
                on_conflict: None,
                allow_deletes: false,
            }
        );
        let line = serde_json::to_string(&Request::new(Command::Status)).unwrap();
        assert_eq!(line, r#"{"v":1,"cmd":"status"}"#);
        assert_eq!(parse_request(&line).unwrap().cmd, Command::Status);
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
            let e = parse_request(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn lines_are_told_apart() {
        let ev: Line =
            serde_json::from_str(r#"{"event":"uploaded","path":"a.md","bytes":3}"#).unwrap();
        assert!(matches!(ev, Line::Event(Event::Uploaded { .. })));
        let reply: Line =
            serde_json::from_str(r#"{"ok":true,"code":0,"message":"paused"}"#).unwrap();
        assert!(matches!(reply, Line::Reply(Reply { ok: true, .. })));
    }
}
