//! `devlogd ctl`: the control-socket client. Sends one request, prints the streamed
//! progress and the final reply the same way `devlogd push` does, exits with the code the
//! daemon chose.

use crate::commands::{CliError, exit};
use crate::config::Config;
use crate::daemon::control::socket_path;
use crate::protocol::{Command, Line, Reply, Request};
use crate::push::PushReport;
use crate::ui::{self, Progress};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

pub async fn run(config: &Config, cmd: Command, json: bool) -> Result<i32, CliError> {
    let path = socket_path(config);
    let stream = UnixStream::connect(&path).await.map_err(|_| {
        CliError::new(
            exit::NO_DAEMON,
            format!("devlogd is not running (socket {})", path.display()),
        )
    })?;
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
    print_reply(config, &cmd, &reply, json);
    if let (false, Some(error)) = (reply.ok, &reply.error) {
        return Err(CliError::new(reply.code, error.clone()));
    }
    Ok(reply.code)
}

fn print_reply(config: &Config, cmd: &Command, reply: &Reply, json: bool) {
    match cmd {
        Command::Status => {
            let Some(status) = &reply.status else { return };
            if json {
                println!("{status}");
            } else {
                println!("{}", status_text(status));
            }
        }
        Command::Push { .. } => {
            let Some(report) = &reply.report else {
                if let Some(m) = &reply.message {
                    println!("{m}");
                }
                return;
            };
            if json {
                println!("{report}");
            } else if let Ok(r) = serde_json::from_value::<PushReport>(report.clone()) {
                let root = config.root.display().to_string();
                println!(
                    "{}",
                    ui::push_summary(&r, &root, &config.remote.to_string())
                );
            }
        }
        _ => {
            if let Some(m) = &reply.message {
                if json {
                    println!("{}", serde_json::json!({ "ok": reply.ok, "message": m }));
                } else {
                    println!("{m}");
                }
            }
        }
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
    let held = num("held_deletes");
    if held > 0 {
        lines.push(format!(
            "deletes HELD   {held} file(s) deleted locally, more than one pass may delete (mass-delete guard): run `devlogd ctl push --allow-deletes` to delete them remotely (their last content stays in the history)"
        ));
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
    match s["watch_limited"].as_str() {
        Some(m) => lines.push(format!("watch          LIMITED: {m}")),
        None => lines.push("watch          ok".into()),
    }
    lines.join("\n")
}
