//! `devlogd ctl`: the control-socket client. Sends one request, prints the streamed
//! progress and the final reply the same way `devlogd push` does, exits with the code the
//! daemon chose.

use crate::commands::{Failure, exit};
use crate::config::{Config, Dirs};
use crate::daemon::control::socket_path_in;
use crate::exit::ExitCode;
use crate::protocol::{Command, Line, RemoteKind, Reply, Request};
use crate::ui::{self, Progress, printable};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Send `cmd` to the daemon whose socket `dirs` names and print the reply as `cmd` asks.
/// `config` (when it loads) only labels a push report; `ctl` works with a broken config file.
pub async fn run(dirs: &Dirs, config: Option<&Config>, cmd: Command) -> Result<ExitCode, Failure> {
    if let Command::Status {
        prometheus: true, ..
    } = cmd
    {
        // A daemon that does not answer is a metric too: a textfile written now must not
        // keep saying what it said before the daemon stopped.
        match status(dirs).await {
            Ok(s) => print!("{}", crate::commands::metrics::render(&s)),
            Err(e) if e.code == exit::NO_DAEMON => {
                print!("{}", crate::commands::metrics::render_down());
                eprintln!("devlogd: {}", e.message);
            }
            Err(e) => return Err(e),
        }
        return Ok(exit::OK);
    }
    let json = cmd.json_output();
    let progress = Progress::new(json);
    let reply = exchange(dirs, &cmd, &progress).await?;
    progress.finish();
    let printed_json = print_reply(config, &cmd, &reply, json);
    if let (false, Some(error)) = (reply.ok, &reply.error) {
        let e = Failure::new(reply.code, error.clone());
        return Err(if printed_json { e.json_printed() } else { e });
    }
    Ok(reply.code)
}

/// The daemon's status (for `service status` and `ctl status --prometheus`).
pub async fn status(dirs: &Dirs) -> Result<Box<crate::protocol::Status>, Failure> {
    let reply = exchange(dirs, &Command::STATUS, &Progress::new(true)).await?;
    match (reply.status, reply.error) {
        (Some(status), _) => Ok(status),
        (None, error) => Err(Failure::new(
            reply.code,
            error.unwrap_or_else(|| "devlogd answered without a status".into()),
        )),
    }
}

/// Send `cmd`, show the progress it streams, return the final reply.
async fn exchange(dirs: &Dirs, cmd: &Command, progress: &Progress) -> Result<Reply, Failure> {
    let path = socket_path_in(dirs);
    check_socket_dir(&path)?;
    let stream = UnixStream::connect(&path).await.map_err(|_| {
        Failure::new(
            exit::NO_DAEMON,
            format!(
                "devlogd is not running (socket {}): start it with devlogd service install, or devlogd run in a terminal",
                path.display()
            ),
        )
    })?;
    check_peer(&stream, &path)?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(&Request::new(cmd.clone()))
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    line.push('\n');
    let lost = |e: std::io::Error| {
        Failure::new(
            exit::NO_DAEMON,
            format!("lost the connection to devlogd ({}): {e}", path.display()),
        )
    };
    write.write_all(line.as_bytes()).await.map_err(lost)?;
    let mut lines = BufReader::new(read).lines();
    let reply = loop {
        let Some(text) = lines.next_line().await.map_err(lost)? else {
            return Err(Failure::new(
                exit::NO_DAEMON,
                "devlogd closed the connection without an answer",
            ));
        };
        match serde_json::from_str::<Line>(&text) {
            Ok(Line::Event(event)) => progress.event(event),
            Ok(Line::Reply(reply)) => break reply,
            Err(e) => {
                return Err(Failure::new(
                    exit::USAGE,
                    format!("unexpected answer from devlogd ({e}): {text}"),
                ));
            }
        }
    };
    Ok(reply)
}

/// The socket's directory must be ours and private: anyone who could create files in it
/// could stand in for the daemon.
fn check_socket_dir(path: &std::path::Path) -> Result<(), Failure> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(()); // no directory, no daemon: connect says so
    };
    let me = rustix::process::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(Failure::new(
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
fn check_peer(stream: &UnixStream, path: &std::path::Path) -> Result<(), Failure> {
    let me = rustix::process::getuid().as_raw();
    let peer = stream.peer_cred().map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("cannot check who listens on {}: {e}", path.display()),
        )
    })?;
    if peer.uid() != me {
        return Err(Failure::new(
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
        Command::Status { .. } => {
            let Some(status) = &reply.status else {
                return plain(reply);
            };
            if json {
                println!("{}", to_json(status));
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
                println!("{}", to_json(report));
            } else {
                let (root, remote) = match config {
                    Some(c) => (c.root.display().to_string(), c.remote.to_string()),
                    None => ("the journal".to_string(), "the remote".to_string()),
                };
                println!("{}", ui::push_summary(report, &root, &remote));
            }
            json
        }
        Command::Pull { .. } => {
            let Some(report) = &reply.pull else {
                return plain(reply);
            };
            if json {
                println!("{}", to_json(report));
            } else {
                let remote = config.map_or("the remote".to_string(), |c| c.remote.to_string());
                println!("{}", super::pull::summary(report, &remote));
            }
            json
        }
        _ => plain(reply),
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    super::to_json(value)
}

fn age(secs: i64) -> String {
    format!(
        "{} ago",
        crate::verdict::duration(secs.max(0).unsigned_abs())
    )
}

/// `ctl status` for people.
pub fn status_text(s: &crate::protocol::Status) -> String {
    let w = &s.worker;
    let state = serde_json::to_value(w.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut lines = Vec::new();
    // Names and messages the daemon reports may come from the disk or the remote.
    let shown = |text: &str| printable(text).into_owned();
    if let Some(v) = &s.verdict {
        lines.push(shown(&v.text));
        for warning in &v.warnings {
            lines.push(format!("WARNING: {}", shown(warning)));
        }
    }
    lines.extend([
        format!(
            "devlogd {} (pid {}), up {}",
            s.version,
            s.pid,
            age(s.uptime_s as i64).trim_end_matches(" ago")
        ),
        format!("state          {state}"),
        format!("root           {}", shown(&w.root)),
    ]);
    match w.remote_kind {
        RemoteKind::Azure => {
            lines.push(format!("remote         {}", shown(&w.remote)));
            lines.push(format!("credential     {}", shown(&w.credential)));
        }
        // A directory needs no credential: its files are guarded by their permissions.
        RemoteKind::Directory => lines.push(format!("remote         {}", shown(&w.remote))),
        RemoteKind::LocalMirror => lines.push(format!(
            "remote         {} (the built-in mirror, on this machine's disk)",
            shown(&w.remote)
        )),
    }
    lines.push(format!(
        "mode           {}{}",
        w.mode
            .describe(w.pull_interval_s.map(std::time::Duration::from_secs)),
        if w.encrypted { ", encrypted" } else { "" }
    ));
    let oldest = s
        .pending_oldest_ms
        .map(|ms| format!(", oldest {:.1} s", ms as f64 / 1000.0))
        .unwrap_or_default();
    lines.push(format!(
        "pending        {} path(s){oldest}",
        s.pending_paths
    ));
    match &w.last_push {
        Some(last) => {
            let ago = s.last_push_age_s.map_or_else(
                || crate::daemon::worker::unix_now() - last.finished_unix,
                |a| a as i64,
            );
            lines.push(format!(
                "last push      {}: {} uploaded, {} unchanged, {} deleted, {} failed, {} conflicts{}",
                age(ago),
                last.uploaded,
                last.unchanged,
                last.deleted,
                last.failed,
                last.conflicts,
                if last.full { " (full pass)" } else { "" }
            ));
        }
        None => lines.push("last push      none yet".into()),
    }
    if w.mode == crate::config::SyncMode::TwoWay {
        match &w.last_pull {
            Some(p) => {
                let ago = crate::daemon::worker::unix_now() - p.at_unix;
                let mut line = format!(
                    "last pull      {}: {} downloaded, {} deleted, {} conflict file(s)",
                    age(ago.max(0)),
                    p.downloaded,
                    p.deleted,
                    p.conflict_files.len()
                );
                if let Some(e) = &p.error {
                    line.push_str(&format!("; failed: {}", shown(e)));
                }
                lines.push(line);
            }
            None => lines.push("last pull      none yet".into()),
        }
        if !w.conflict_files.is_empty() {
            lines.push(format!(
                "conflict files {} waiting (devlogd conflicts --resolve PATH --keep mine|theirs):",
                w.conflict_files.len()
            ));
            for c in &w.conflict_files {
                lines.push(format!(
                    "  {} ← {} ({}'s version)",
                    shown(&c.path),
                    shown(&c.file),
                    shown(&c.host)
                ));
            }
        }
    }
    match s.last_success_age_s {
        Some(a) => lines.push(format!("last success   {}", age(a))),
        None => lines.push("last success   none yet".into()),
    }
    if let Some(r) = &w.retrying {
        lines.push(format!("requests       {}", shown(r)));
    }
    if let Some(e) = &w.last_error {
        lines.push(format!("last error     {}", shown(e)));
    }
    if let Some(secs) = s.offline_for_s {
        lines.push(format!(
            "offline for    {}",
            age(secs as i64).trim_end_matches(" ago")
        ));
    }
    if w.failed_paths > 0 {
        let mut names = w
            .failed_sample
            .iter()
            .map(|name| shown(name))
            .collect::<Vec<_>>()
            .join(", ");
        if w.failed_paths > w.failed_sample.len() {
            names.push_str(", …");
        }
        lines.push(format!(
            "not pushed     {} path(s), retried: {names}{}",
            w.failed_paths,
            w.failed_error
                .as_deref()
                .map(|e| format!(" ({})", shown(e)))
                .unwrap_or_default()
        ));
    }
    if w.held_deletes > 0 {
        lines.push(format!(
            "deletes HELD   {} file(s) deleted locally, held by the mass-delete guard ({}): run `devlogd ctl push --allow-deletes` to delete them remotely (their last content stays in the history)",
            w.held_deletes,
            w.held_deletes_reason
                .as_deref()
                .unwrap_or("more than it allows")
        ));
    }
    if w.corrupt > 0 {
        let mut names = w
            .corrupt_sample
            .iter()
            .map(|name| shown(name))
            .collect::<Vec<_>>()
            .join(", ");
        if w.corrupt > w.corrupt_sample.len() {
            names.push_str(", …");
        }
        lines.push(format!(
            "corrupt        {} path(s) damaged on the remote (bytes no longer match the MD5 written with them): {names}; run `devlogd ctl push --all` to repair them from the local files",
            w.corrupt
        ));
    }
    if w.conflicts > 0 {
        lines.push(format!(
            "conflicts      {} path(s) another writer changed too: run `devlogd conflicts`",
            w.conflicts
        ));
    }
    if let Some(r) = s.next_retry_in_s {
        lines.push(format!("next retry     in {r} s"));
    }
    lines.push(format!(
        "activity       {} pushes, {} files uploaded, {} rescans, {} watcher overflows",
        w.pushes, w.files_uploaded, w.rescans, w.watcher_overflows
    ));
    lines.push(format!("index          {} files", w.files_in_index));
    match (&w.watch_limited, &s.watch_issue) {
        (Some(m), _) => lines.push(format!("watch          LIMITED: {}", shown(m))),
        (None, Some(issue)) => lines.push(format!("watch          {}: {}", s.watch, shown(issue))),
        (None, None) => lines.push("watch          ok".into()),
    }
    lines.join("\n")
}
