//! `devlogd ctl status --prometheus`: the daemon's counters in the Prometheus text
//! exposition format (for node_exporter's textfile collector or a scrape wrapper).

use crate::protocol::Status;
use std::fmt::Write as _;

const UP_HELP: &str = "1 when the daemon answered this scrape, 0 when it is not running.";
const BACKED_UP_HELP: &str =
    "1 when the verdict says the journal is safe (backed up or backing up normally), else 0.";

/// What a scrape says while no daemon answers: down, and so not backed up.
pub fn render_down() -> String {
    format!(
        "# HELP devlogd_up {UP_HELP}\n# TYPE devlogd_up gauge\ndevlogd_up 0\n# HELP devlogd_backed_up {BACKED_UP_HELP}\n# TYPE devlogd_backed_up gauge\ndevlogd_backed_up 0\n"
    )
}

/// The status as metrics, `devlogd_` prefixed, each with its HELP and TYPE lines.
pub fn render(s: &Status) -> String {
    let w = &s.worker;
    let verdict = s.verdict.as_ref();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP devlogd_{name} {help}");
        let _ = writeln!(out, "# TYPE devlogd_{name} {kind}");
        let _ = writeln!(out, "devlogd_{name} {value}");
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metric("up", "gauge", UP_HELP, 1.0);
    metric(
        "backed_up",
        "gauge",
        BACKED_UP_HELP,
        flag(verdict.is_some_and(|v| v.safe)),
    );
    metric(
        "pending_paths",
        "gauge",
        "Paths not yet on the remote.",
        s.pending_paths as f64,
    );
    metric(
        "pending_oldest_seconds",
        "gauge",
        "Age of the oldest pending path (0 when none).",
        s.pending_oldest_ms.unwrap_or(0) as f64 / 1000.0,
    );
    metric(
        "failed_paths",
        "gauge",
        "Paths that failed to push and are retried.",
        w.failed_paths as f64,
    );
    metric(
        "held_deletes",
        "gauge",
        "Local deletes held by the mass-delete guard.",
        w.held_deletes as f64,
    );
    metric(
        "corrupt_blobs",
        "gauge",
        "Blobs damaged on the remote (bytes no longer match their MD5), not repaired yet.",
        w.corrupt as f64,
    );
    metric(
        "refused_deletes",
        "gauge",
        "Local deletes the credentials may not carry out (no delete permission).",
        w.refused_deletes as f64,
    );
    metric(
        "files_deleted_total",
        "counter",
        "Files removed from the remote's current view since the daemon started.",
        w.files_deleted as f64,
    );
    metric(
        "conflicts",
        "gauge",
        "Paths whose remote version another writer changed.",
        w.conflicts as f64,
    );
    metric(
        "conflict_files",
        "gauge",
        "Two-way: sync-conflict files in the journal waiting for the user.",
        w.conflict_files.len() as f64,
    );
    if let Some(pull) = &w.last_pull {
        metric(
            "last_pull_timestamp_seconds",
            "gauge",
            "Two-way: when the last pull ended (unix seconds).",
            pull.at_unix as f64,
        );
        metric(
            "last_pull_failed",
            "gauge",
            "Two-way: 1 when the last pull failed, else 0.",
            flag(pull.error.is_some()),
        );
        metric(
            "last_pull_downloaded",
            "gauge",
            "Two-way: files the last pull brought down.",
            pull.downloaded as f64,
        );
    }
    metric(
        "files_in_index",
        "gauge",
        "Files recorded as on the remote.",
        w.files_in_index as f64,
    );
    metric(
        "remote_reached",
        "gauge",
        "1 once the remote answered since the daemon started.",
        flag(w.remote_reached),
    );
    metric(
        "paused",
        "gauge",
        "1 while pushes are paused.",
        flag(w.state == crate::protocol::State::Paused),
    );
    metric(
        "pushes_total",
        "counter",
        "Pushes run since the daemon started.",
        w.pushes as f64,
    );
    metric(
        "files_uploaded_total",
        "counter",
        "Files uploaded since the daemon started.",
        w.files_uploaded as f64,
    );
    metric(
        "rescans_total",
        "counter",
        "Full rescans since the daemon started.",
        w.rescans as f64,
    );
    metric(
        "watcher_overflows_total",
        "counter",
        "Watcher overflows and errors since the daemon started.",
        w.watcher_overflows as f64,
    );
    if let Some(age) = s.last_success_age_s {
        metric(
            "last_success_age_seconds",
            "gauge",
            "Seconds since the last push that reached the remote without failures.",
            age as f64,
        );
    }
    if let Some(t) = w.credential_expires_unix {
        metric(
            "credential_expiry_timestamp_seconds",
            "gauge",
            "When the SAS token in use expires (unix seconds).",
            t as f64,
        );
    }
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        s.uptime_s as f64,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_and_type_and_the_verdict_is_a_gauge() {
        let mut s = Status {
            pending_paths: 3,
            ..Default::default()
        };
        s.worker.pushes = 7;
        s.verdict = Some(crate::protocol::Verdict {
            state: crate::protocol::VerdictState::BackedUp,
            safe: true,
            text: "ok".into(),
            warnings: vec![],
        });
        let text = render(&s);
        assert!(text.contains("devlogd_backed_up 1\n"), "{text}");
        assert!(text.contains("devlogd_pending_paths 3\n"), "{text}");
        assert!(text.contains("# TYPE devlogd_pushes_total counter\ndevlogd_pushes_total 7\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(' ').next().unwrap_or("");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
