//! `devlogd ctl`: the control-socket client. Sends one request, prints the streamed
//! progress and the final reply the same way `devlogd push` does, exits with the code the
//! daemon chose.

use crate::commands::{CliError, exit};
use crate::config::{Config, Dirs};
use crate::daemon::control::socket_path_in;
use crate::protocol::{Command, Line, Reply, Request};
use crate::push::PushReport;
use crate::ui::{self, Progress};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Send `cmd` to the daemon whose socket `dirs` names. `config` (when it loads) only labels
/// a push report; `ctl` works with a broken config file.
pub async fn run(
    dirs: &Dirs,
    config: Option<&Config>,
    cmd: Command,
    json: bool,
) -> Result<i32, CliError> {
    let path = socket_path_in(dirs);
    check_socket_dir(&path)?;
    let stream = UnixStream::connect(&path).await.map_err(|_| {
        CliError::new(
            exit::NO_DAEMON,
            format!("devlogd is not running (socket {})", path.display()),
        )
    })?;
    check_peer(&stream, &path)?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(&Request::new(cmd.clone()))
        .map_err(|e| CliError::new(exit::USAGE, e.to_string()))?;
    line.push('\n');
    let lost = |e: std::io::Error| {
        CliError::new(
            exit::NO_DAEMON,
            format!("lost the connection to devlogd ({}): {e}", path.display()),
        )
    };
    write.write_all(line.as_bytes()).await.map_err(lost)?;
    let progress = Progress::new(json);
    let mut lines = BufReader::new(read).lines();
    let reply = loop {
        let Some(text) = lines.next_line().await.map_err(lost)? else {
            return Err(CliError::new(
                exit::NO_DAEMON,
                "devlogd closed the connection without an answer",
            ));
        };
        match serde_json::from_str::<Line>(&text) {
            Ok(Line::Event(event)) => progress.event(event.into()),
            Ok(Line::Reply(reply)) => break reply,
            Err(e) => {
                return Err(CliError::new(
                    exit::USAGE,
                    format!("unexpected answer from devlogd ({e}): {text}"),
                ));
            }
        }
    };
    progress.finish();
    let printed_json = print_reply(config, &cmd, &reply, json);
    if let (false, Some(error)) = (reply.ok, &reply.error) {
        let e = CliError::new(reply.code, error.clone());
        return Err(if printed_json { e.json_printed() } else { e });
    }
    Ok(reply.code)
}

/// The socket's directory must be ours and private: anyone who could create files in it
/// could stand in for the daemon.
fn check_socket_dir(path: &std::path::Path) -> Result<(), CliError> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(()); // no directory, no daemon: connect says so
    };
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(CliError::new(
            exit::USAGE,
            format!(
                "refusing to use the control socket: its directory {} is not a private directory of this user (owner uid {}, mode {:o}); check XDG_RUNTIME_DIR",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Whatever listens on the socket must run as this user.
fn check_peer(stream: &UnixStream, path: &std::path::Path) -> Result<(), CliError> {
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    let peer = stream.peer_cred().map_err(|e| {
        CliError::new(
            exit::USAGE,
            format!("cannot check who listens on {}: {e}", path.display()),
        )
    })?;
    if peer.uid() != me {
        return Err(CliError::new(
            exit::USAGE,
            format!(
                "refusing to talk to {}: it is served by another user (uid {}), not by your devlogd",
                path.display(),
                peer.uid()
            ),
        ));
    }
    Ok(())
}

/// Print the daemon's answer; whether a JSON object went to stdout.
fn print_reply(config: Option<&Config>, cmd: &Command, reply: &Reply, json: bool) -> bool {
    // A reply without a status or report (`push --no-wait`'s "queued", an error) is still
    // one JSON object under --json.
    let plain = |reply: &Reply| {
        if json {
            let mut object = serde_json::json!({ "ok": reply.ok, "code": reply.code });
            if let Some(m) = &reply.message {
                object["message"] = m.clone().into();
            }
            if let Some(e) = &reply.error {
                object["error"] = crate::redact::scrub(e).into();
            }
            println!("{object}");
            true
        } else {
            if let Some(m) = &reply.message {
                println!("{m}");
            }
            false
        }
    };
    match cmd {
        Command::Status => {
            let Some(status) = &reply.status else {
                return plain(reply);
            };
            if json {
                println!("{status}");
            } else {
                println!("{}", status_text(status));
            }
            json
        }
        Command::Push { .. } => {
            let Some(report) = &reply.report else {
                return plain(reply);
            };
            if json {
                println!("{report}");
            } else if let Ok(r) = serde_json::from_value::<PushReport>(report.clone()) {
                let (root, remote) = match config {
                    Some(c) => (c.root.display().to_string(), c.remote.to_string()),
                    None => ("the journal".to_string(), "the remote".to_string()),
                };
                println!("{}", ui::push_summary(&r, &root, &remote));
            }
            json
        }
        _ => plain(reply),
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86400 => format!("{} h {} min ago", s / 3600, (s % 3600) / 60),
        s => format!("{} days ago", s / 86400),
    }
}

/// `ctl status` for people.
pub fn status_text(s: &serde_json::Value) -> String {
    let str_of = |k: &str| s[k].as_str().unwrap_or("-").to_string();
    let num = |k: &str| s[k].as_u64().unwrap_or(0);
    let mut lines = vec![
        format!(
            "devlogd {} (pid {}), up {}",
            str_of("version"),
            num("pid"),
            age(num("uptime_s") as i64).trim_end_matches(" ago")
        ),
        format!("state          {}", str_of("state")),
        format!("root           {}", str_of("root")),
        format!("remote         {}", str_of("remote")),
        format!("credential     {}", str_of("credential")),
    ];
    let pending = num("pending_paths");
    let oldest = s["pending_oldest_ms"]
        .as_u64()
        .map(|ms| format!(", oldest {:.1} s", ms as f64 / 1000.0))
        .unwrap_or_default();
    lines.push(format!("pending        {pending} path(s){oldest}"));
    let last = &s["last_push"];
    if last.is_object() {
        let ago = super::daemon::worker::unix_now() - last["finished_unix"].as_i64().unwrap_or(0);
        lines.push(format!(
            "last push      {}: {} uploaded, {} unchanged, {} failed, {} conflicts{}",
            age(ago),
            last["uploaded"],
            last["unchanged"],
            last["failed"],
            last["conflicts"],
            if last["full"].as_bool() == Some(true) {
                " (full pass)"
            } else {
                ""
            }
        ));
    } else {
        lines.push("last push      none yet".into());
    }
    match s["last_success_age_s"].as_i64() {
        Some(a) => lines.push(format!("last success   {}", age(a))),
        None => lines.push("last success   none yet".into()),
    }
    if let Some(e) = s["last_error"].as_str() {
        lines.push(format!("last error     {e}"));
    }
    if let Some(r) = s["next_retry_in_s"].as_u64() {
        lines.push(format!("next retry     in {r} s"));
    }
    lines.push(format!(
        "activity       {} pushes, {} files uploaded, {} rescans, {} watcher overflows",
        num("pushes"),
        num("files_uploaded"),
        num("rescans"),
        num("watcher_overflows")
    ));
    lines.push(format!("index          {} files", num("files_in_index")));
    match (s["watch_limited"].as_str(), s["watch_issue"].as_str()) {
        (Some(m), _) => lines.push(format!("watch          LIMITED: {m}")),
        (None, Some(issue)) => lines.push(format!("watch          {}: {issue}", str_of("watch"))),
        (None, None) => lines.push("watch          ok".into()),
    }
    lines.join("\n")
}
