//! `[alert] command`: told when the journal has not been safe for a while. The task
//! follows the status (it wakes when the worker's or the queue's status changes, and once a
//! minute for what changes on its own, such as a root that went away); once the verdict has
//! been unsafe for `after_s` it runs the command, and once more when the verdict is safe
//! again. An unsafe verdict that settles into another state (retrying, then unreachable)
//! runs it again once that state has held for `after_s`: the last alert names what is
//! wrong now. Each state at most once per unsafe period, so a flapping verdict cannot
//! flood the user. The command runs with `sh -c`, stdin closed, its output in the daemon's log,
//! and the verdict in its environment: `DEVLOGD_VERDICT_STATE` (`unreachable`,
//! `credentials_expired`, … or `backed_up` when safe again), `DEVLOGD_VERDICT` (the line),
//! `DEVLOGD_SAFE` (`0` or `1`).

use super::status::Sources;
use crate::config::AlertConfig;
use crate::protocol::{Verdict, VerdictState};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the verdict is looked at again with nothing changed (a root removed changes no
/// status by itself).
const RECHECK: Duration = Duration::from_secs(60);

pub async fn run(
    sources: Sources,
    mut config: watch::Receiver<AlertConfig>,
    cancel: CancellationToken,
) {
    let (mut worker, mut queue) = (sources.worker.clone(), sources.queue.clone());
    let mut unsafe_since: Option<Instant> = None;
    // The unsafe state shown now and since when: a later alert waits for it to settle.
    let mut current: Option<(VerdictState, Instant)> = None;
    // The states alerted in this unsafe period.
    let mut alerted: Vec<VerdictState> = Vec::new();
    loop {
        let settings = config.borrow_and_update().clone();
        let verdict = sources.project().verdict;
        let now = Instant::now();
        let mut due = None;
        match (&settings.command, verdict) {
            (None, _) | (_, None) => {
                (unsafe_since, current) = (None, None);
                alerted.clear();
            }
            (Some(command), Some(v)) if v.safe => {
                if !alerted.is_empty() {
                    spawn(command, &v);
                }
                (unsafe_since, current) = (None, None);
                alerted.clear();
            }
            (Some(command), Some(v)) => {
                let since = *unsafe_since.get_or_insert(now);
                if current.is_none_or(|(state, _)| state != v.state) {
                    current = Some((v.state, now));
                }
                let state_since = current.map_or(now, |(_, at)| at);
                // The first alert counts the whole unsafe period (however the state
                // changed); a later one waits for its own state to hold as long.
                let at = if alerted.is_empty() {
                    since + settings.after
                } else {
                    state_since + settings.after
                };
                if !alerted.contains(&v.state) {
                    if now >= at {
                        spawn(command, &v);
                        alerted.push(v.state);
                    } else {
                        due = Some(at);
                    }
                }
            }
        }
        let recheck = now + RECHECK;
        let wake = due.map_or(recheck, |d| d.min(recheck));
        let watching = settings.command.is_some();
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = config.changed() => if changed.is_err() { return },
            changed = worker.changed() => if changed.is_err() { return },
            changed = queue.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(wake), if watching => {}
        }
    }
}

/// Run the command for `verdict`, without waiting for it (a thread reaps it).
fn spawn(command: &str, verdict: &Verdict) {
    let state = serde_json::to_value(verdict.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    tracing::info!(state = %state, "running the alert command");
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("DEVLOGD_VERDICT_STATE", &state)
        .env("DEVLOGD_VERDICT", &verdict.text)
        .env("DEVLOGD_SAFE", if verdict.safe { "1" } else { "0" })
        .stdin(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(mut child) => {
            std::thread::spawn(move || match child.wait() {
                Ok(status) if !status.success() => {
                    tracing::warn!(%status, "the alert command failed")
                }
                Err(e) => tracing::warn!(error = %e, "waiting for the alert command"),
                Ok(_) => {}
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot run the alert command"),
    }
}
