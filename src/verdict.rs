//! The verdict: one line that says whether the journal is safe, from the daemon's status.
//!
//! A pure function of a [`Status`] and the wall-clock time (for the times it names);
//! every age in the status comes from the daemon's monotonic clock. The first problem in
//! this order wins: paused, credentials refused, a local error, unreachable / never
//! reached, failing files, deletes the credentials may not do, held deletes, blobs damaged
//! on the remote, the local mirror, conflicts, pending, backed up.

use crate::protocol::{RemoteKind, RemoteProblem, State, Status, Verdict, VerdictState};

/// A SAS expiring sooner than this is warned about.
pub const EXPIRY_WARNING_S: i64 = 7 * 86400;

/// The verdict on `s`, at wall-clock time `now_unix`.
pub fn of(s: &Status, now_unix: i64) -> Verdict {
    let w = &s.worker;
    let pending = paths(s.pending_paths);
    let since = |unix: Option<i64>| {
        unix.map(|t| format!(" since {}", wall_clock(t, now_unix)))
            .unwrap_or_default()
    };
    let waiting = if s.pending_paths > 0 {
        format!("; {pending} waiting")
    } else {
        String::new()
    };
    let error = w
        .last_error
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let (state, safe, text) = if w.state == State::Paused {
        (
            VerdictState::Paused,
            false,
            format!("NOT BACKING UP: paused{waiting} — run devlogd ctl resume"),
        )
    } else if s.watch == crate::protocol::WatchState::RootMissing {
        (
            VerdictState::RootMissing,
            false,
            format!(
                "NOT BACKED UP: the journal root is gone{} — if you did not mean it, devlogd restore brings it back from {} (nothing was deleted remotely)",
                s.watch_issue
                    .as_deref()
                    .map(|m| format!(" ({})", crate::redact::printable(m)))
                    .unwrap_or_default(),
                w.remote_label
            ),
        )
    } else if let Some(at) = w.credential_expires_unix.filter(|&at| at <= now_unix) {
        (
            VerdictState::CredentialsExpired,
            false,
            format!(
                "NOT BACKED UP: the SAS token expired at {} ({}){waiting} — make a new one with a later expiry (se), then run devlogd ctl reload",
                wall_clock(at, now_unix),
                w.credential
            ),
        )
    } else if w.remote_problem == Some(RemoteProblem::CredentialsRefused)
        && let Some(lacks) = &w.credential_lacks
    {
        // A permission refusal: the SAS says itself what it lacks.
        (
            VerdictState::CredentialsRefused,
            false,
            format!(
                "NOT BACKED UP: the SAS lacks {lacks} permission; the remote refused it{} ({}){waiting} — make a SAS with read, add, create, write, delete and list, then run devlogd ctl reload",
                since(w.remote_problem_since_unix),
                w.credential
            ),
        )
    } else if w.remote_problem == Some(RemoteProblem::CredentialsRefused) {
        (
            VerdictState::CredentialsRefused,
            false,
            format!(
                "NOT BACKED UP: the remote refused the credentials{} ({}){waiting} — run devlogd config check --online",
                since(w.remote_problem_since_unix),
                w.credential
            ),
        )
    } else if w.state == State::Error {
        (
            VerdictState::LocalError,
            false,
            format!("NOT BACKED UP: a local problem stops pushes{error}{waiting}"),
        )
    } else if w.remote_problem == Some(RemoteProblem::Unreachable) && !w.remote_reached {
        let since = match w.remote_reloaded_unix {
            Some(at) => format!("the reload at {}", wall_clock(at, now_unix)),
            None => "devlogd started".into(),
        };
        (
            VerdictState::NeverReached,
            false,
            format!(
                "NOT BACKED UP: {} has not been reached since {since}{error}{waiting} — check remote.url and the network, or run devlogd config check --online",
                w.remote
            ),
        )
    } else if w.remote_problem == Some(RemoteProblem::Unreachable) {
        (
            VerdictState::Unreachable,
            false,
            format!(
                "NOT BACKED UP: {} is unreachable{}{error}{waiting}; retried with back-off",
                w.remote,
                since(w.remote_problem_since_unix),
            ),
        )
    } else if w.failed_paths > 0 {
        let first = w
            .failed_sample
            .first()
            .map(|p| {
                let why = w
                    .failed_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                format!(" (first: {}{why})", crate::redact::printable(p))
            })
            .unwrap_or_default();
        (
            VerdictState::FailingFiles,
            false,
            format!(
                "NOT BACKED UP: {} cannot be pushed{first}; retried with back-off",
                files(w.failed_paths)
            ),
        )
    } else if w.refused_deletes > 0 {
        (
            VerdictState::DeletesRefused,
            false,
            format!(
                "NOT IN SYNC: {} deleted here still on the remote: {}",
                files(w.refused_deletes),
                w.refused_deletes_reason
                    .as_deref()
                    .unwrap_or("the credentials may not delete")
            ),
        )
    } else if w.held_deletes > 0 {
        (
            VerdictState::HeldDeletes,
            false,
            format!(
                "NOT IN SYNC: {} deleted here still on the remote, held by the mass-delete guard — if you did not mean it, devlogd restore brings them back; to delete them remotely too: devlogd ctl push --allow-deletes",
                files(w.held_deletes)
            ),
        )
    } else if w.corrupt > 0 {
        let first = w
            .corrupt_sample
            .first()
            .map(|p| format!(" (first: {})", crate::redact::printable(p)))
            .unwrap_or_default();
        (
            VerdictState::Corrupt,
            false,
            format!(
                "NOT IN SYNC: {} damaged on the remote{first} — run devlogd ctl push --all to repair from the local files",
                files(w.corrupt)
            ),
        )
    } else if let Some(error) = w.last_pull.as_ref().and_then(|p| p.error.as_deref()) {
        (
            VerdictState::PullFailing,
            false,
            format!(
                "NOT IN SYNC: pulling from {} failed ({}); the other machines' changes are not coming down",
                w.remote_label,
                crate::redact::printable(error)
            ),
        )
    } else if w.remote_kind == RemoteKind::LocalMirror {
        (
            VerdictState::LocalMirror,
            false,
            format!(
                "NOT OFF THIS MACHINE: mirroring to a local directory ({}){waiting} — set remote.url to back up elsewhere",
                w.remote
            ),
        )
    } else if s.pending_paths > 0 || w.state == State::Pushing || !w.remote_reached {
        let age = s
            .pending_oldest_ms
            .map(|ms| format!(" for {}", duration(ms / 1000)))
            .unwrap_or_default();
        let mut text = if s.pending_paths > 0 {
            format!("Backing up: {pending} pending{age}")
        } else if w.remote_reached {
            "Backing up: a push is running".to_string()
        } else {
            format!("Backing up: {} not reached yet (first push)", w.remote)
        };
        // Requests failing and retried (a timeout, a 503): not yet a verdict against the
        // remote, but not "fine" either.
        if let Some(retrying) = &w.retrying {
            text.push_str(&format!(" — {retrying}"));
        }
        (VerdictState::BackingUp, w.retrying.is_none(), text)
    } else if let Some(first) = w.conflict_files.first() {
        let n = w.conflict_files.len();
        (
            VerdictState::Conflicts,
            true,
            format!(
                "In sync with {}, with {n} conflict file{} waiting for you ({} from {}{}) — run devlogd conflicts",
                w.remote_label,
                if n == 1 { "" } else { "s" },
                crate::redact::printable(&first.path),
                crate::redact::printable(&first.host),
                if n > 1 { ", …" } else { "" }
            ),
        )
    } else if w.conflicts > 0 {
        (
            VerdictState::Conflicts,
            true,
            format!(
                "Backed up to {}, with {} another writer changed too (both versions kept) — run devlogd conflicts",
                w.remote_label,
                paths(w.conflicts)
            ),
        )
    } else {
        let when = s
            .last_success_age_s
            .map(|a| format!(" {} ago", duration(a.max(0) as u64)))
            .unwrap_or_default();
        (
            VerdictState::BackedUp,
            true,
            format!(
                "All {} backed up to {}{when}",
                files((w.files_in_index as usize).saturating_sub(w.excluded_in_index)),
                w.remote_label
            ),
        )
    };
    Verdict {
        state,
        safe,
        text,
        warnings: expiry_warning(w.credential_expires_unix, now_unix)
            .into_iter()
            .chain(excluded_warning(w))
            .chain(w.warnings.iter().cloned())
            .collect(),
    }
}

/// Files pushed before that the rules now exclude: not counted as backed up, and said.
fn excluded_warning(w: &crate::protocol::WorkerStatus) -> Option<String> {
    let n = w.excluded_in_index;
    let first = w.excluded_sample.first()?;
    let (is, its) = if n == 1 {
        ("is", "its")
    } else {
        ("are", "their")
    };
    Some(format!(
        "{} pushed before {is} now excluded by the include/exclude rules or .devlogignore (first: {}): the remote keeps {its} last version, later changes are not backed up — change the rules to back {} up again",
        files(n),
        crate::redact::printable(first),
        if n == 1 { "it" } else { "them" },
    ))
}

/// A warning when the SAS token expired or expires within [`EXPIRY_WARNING_S`].
pub fn expiry_warning(expires_unix: Option<i64>, now_unix: i64) -> Option<String> {
    let at = expires_unix?;
    let when = wall_clock(at, now_unix);
    if at <= now_unix {
        Some(format!(
            "the SAS token expired at {when} ({} ago): make a new one",
            duration((now_unix - at) as u64)
        ))
    } else if at - now_unix < EXPIRY_WARNING_S {
        Some(format!(
            "the SAS token expires at {when} (in {}): make a new one before then",
            duration((at - now_unix) as u64)
        ))
    } else {
        None
    }
}

/// `10:02 UTC` on the same day, else `2026-11-28 10:02 UTC`.
pub fn wall_clock(unix: i64, now_unix: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else {
        return format!("unix time {unix}");
    };
    let same_day =
        time::OffsetDateTime::from_unix_timestamp(now_unix).is_ok_and(|now| now.date() == t.date());
    if same_day {
        format!("{:02}:{:02} UTC", t.hour(), t.minute())
    } else {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    }
}

/// `12 s`, `4 min`, `2 h 5 min`, `1 day`, `3 days`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => days(s / 86400),
    }
}

/// `1 day`, `30 days`.
pub fn days(n: u64) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

fn files(n: usize) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

fn paths(n: usize) -> String {
    if n == 1 {
        "1 path".into()
    } else {
        format!("{n} paths")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000; // 2026-11-18 11:06:40 UTC

    fn healthy() -> Status {
        let mut s = Status::default();
        s.worker.remote = "https://acct.blob.core.windows.net/journal/laptop".into();
        s.worker.remote_label = "Azure (journal/laptop)".into();
        s.worker.credential = "AZURE_STORAGE_SAS_TOKEN".into();
        s.worker.remote_reached = true;
        s.worker.files_in_index = 305;
        s.last_success_age_s = Some(12);
        s
    }

    /// One row per state: what changes from a healthy status, and what the verdict says.
    #[test]
    fn each_state_has_its_verdict() {
        type Edit = fn(&mut Status);
        let rows: Vec<(Edit, VerdictState, bool, &str)> = vec![
            (
                |_| {},
                VerdictState::BackedUp,
                true,
                "All 305 files backed up to Azure (journal/laptop) 12 s ago",
            ),
            (
                |s| {
                    s.pending_paths = 42;
                    s.pending_oldest_ms = Some(8_400);
                },
                VerdictState::BackingUp,
                true,
                "Backing up: 42 paths pending for 8 s",
            ),
            (
                |s| {
                    s.pending_paths = 1;
                    s.pending_oldest_ms = Some(31_000);
                    s.worker.state = State::Pushing;
                    s.worker.retrying = Some(
                        "retrying since 11:06 UTC: timed out: no answer from the service within 10 s"
                            .into(),
                    );
                },
                VerdictState::BackingUp,
                false,
                "Backing up: 1 path pending for 31 s — retrying since 11:06 UTC: timed out: no answer from the service within 10 s",
            ),
            (
                |s| {
                    s.worker.remote_problem = Some(RemoteProblem::CredentialsRefused);
                    s.worker.remote_problem_since_unix = Some(NOW - 600);
                    s.worker.state = State::Offline;
                },
                VerdictState::CredentialsRefused,
                false,
                "NOT BACKED UP: the remote refused the credentials since 10:56 UTC (AZURE_STORAGE_SAS_TOKEN) — run devlogd config check --online",
            ),
            (
                |s| {
                    s.worker.remote_problem = Some(RemoteProblem::CredentialsRefused);
                    s.worker.remote_problem_since_unix = Some(NOW - 600);
                    s.worker.state = State::Offline;
                    s.worker.credential_lacks = Some("create, write".into());
                },
                VerdictState::CredentialsRefused,
                false,
                "NOT BACKED UP: the SAS lacks create, write permission; the remote refused it since 10:56 UTC (AZURE_STORAGE_SAS_TOKEN) — make a SAS with read, add, create, write, delete and list, then run devlogd ctl reload",
            ),
            (
                |s| {
                    s.worker.remote_problem = Some(RemoteProblem::Unreachable);
                    s.worker.remote_problem_since_unix = Some(NOW - 86_400);
                    s.worker.state = State::Offline;
                    s.pending_paths = 1;
                },
                VerdictState::Unreachable,
                false,
                "NOT BACKED UP: https://acct.blob.core.windows.net/journal/laptop is unreachable since 2026-11-17 11:06 UTC; 1 path waiting; retried with back-off",
            ),
            (
                |s| {
                    s.worker.remote_problem = Some(RemoteProblem::Unreachable);
                    s.worker.remote_reached = false;
                    s.worker.last_error = Some("connection refused".into());
                    s.last_success_age_s = None;
                },
                VerdictState::NeverReached,
                false,
                "NOT BACKED UP: https://acct.blob.core.windows.net/journal/laptop has not been reached since devlogd started (connection refused) — check remote.url and the network, or run devlogd config check --online",
            ),
            (
                |s| {
                    s.worker.state = State::Paused;
                    s.pending_paths = 2;
                },
                VerdictState::Paused,
                false,
                "NOT BACKING UP: paused; 2 paths waiting — run devlogd ctl resume",
            ),
            (
                |s| {
                    s.worker.refused_deletes = 2;
                    s.worker.held_deletes = 60;
                    s.worker.refused_deletes_reason = Some(
                        "the SAS lacks delete permission (sp=racwl): make a SAS with delete permission, then run devlogd ctl reload".into(),
                    );
                },
                VerdictState::DeletesRefused,
                false,
                "NOT IN SYNC: 2 files deleted here still on the remote: the SAS lacks delete permission (sp=racwl): make a SAS with delete permission, then run devlogd ctl reload",
            ),
            (
                |s| s.worker.held_deletes = 60,
                VerdictState::HeldDeletes,
                false,
                "NOT IN SYNC: 60 files deleted here still on the remote, held by the mass-delete guard — if you did not mean it, devlogd restore brings them back; to delete them remotely too: devlogd ctl push --allow-deletes",
            ),
            (
                |s| {
                    s.worker.failed_paths = 2;
                    s.worker.failed_sample = vec!["a.md".into(), "b.md".into()];
                    s.worker.failed_error = Some("HTTP 500".into());
                },
                VerdictState::FailingFiles,
                false,
                "NOT BACKED UP: 2 files cannot be pushed (first: a.md: HTTP 500); retried with back-off",
            ),
            (
                |s| {
                    s.worker.corrupt = 2;
                    s.worker.corrupt_sample = vec!["a.md".into(), "b.md".into()];
                    s.worker.conflicts = 1;
                },
                VerdictState::Corrupt,
                false,
                "NOT IN SYNC: 2 files damaged on the remote (first: a.md) — run devlogd ctl push --all to repair from the local files",
            ),
            (
                |s| s.worker.conflicts = 1,
                VerdictState::Conflicts,
                true,
                "Backed up to Azure (journal/laptop), with 1 path another writer changed too (both versions kept) — run devlogd conflicts",
            ),
            (
                |s| {
                    s.worker.remote_kind = RemoteKind::LocalMirror;
                    s.worker.remote = "file:///home/u/.local/share/devlog/mirror".into();
                },
                VerdictState::LocalMirror,
                false,
                "NOT OFF THIS MACHINE: mirroring to a local directory (file:///home/u/.local/share/devlog/mirror) — set remote.url to back up elsewhere",
            ),
            (
                |s| {
                    s.worker.state = State::Error;
                    s.worker.last_error = Some("the state index is read-only".into());
                },
                VerdictState::LocalError,
                false,
                "NOT BACKED UP: a local problem stops pushes (the state index is read-only)",
            ),
        ];
        for (edit, state, safe, text) in rows {
            let mut s = healthy();
            edit(&mut s);
            let v = of(&s, NOW);
            assert_eq!((v.state, v.safe, v.text.as_str()), (state, safe, text));
        }
    }

    #[test]
    fn a_push_that_never_reached_the_remote_is_not_backed_up() {
        let mut s = healthy();
        s.worker.remote_reached = false;
        s.last_success_age_s = None;
        let v = of(&s, NOW);
        assert_eq!(v.state, VerdictState::BackingUp);
        assert!(v.text.contains("not reached yet"), "{}", v.text);
    }

    #[test]
    fn a_sas_close_to_its_expiry_is_warned_about() {
        let mut s = healthy();
        s.worker.credential_expires_unix = Some(NOW + 3 * 86400);
        let v = of(&s, NOW);
        assert_eq!(
            v.warnings,
            vec![
                "the SAS token expires at 2026-11-21 11:06 UTC (in 3 days): make a new one before then"
            ]
        );
        s.worker.credential_expires_unix = Some(NOW + 30 * 86400);
        assert!(of(&s, NOW).warnings.is_empty());
        assert_eq!(
            expiry_warning(Some(NOW - 120), NOW).as_deref(),
            Some("the SAS token expired at 11:04 UTC (2 min ago): make a new one")
        );
    }

    #[test]
    fn a_remote_a_reload_switched_to_is_not_reached_since_the_reload() {
        let mut s = healthy();
        s.worker.remote_reached = false;
        s.worker.remote_problem = Some(RemoteProblem::Unreachable);
        s.worker.remote_reloaded_unix = Some(NOW - 60);
        let v = of(&s, NOW);
        assert_eq!(v.state, VerdictState::NeverReached);
        assert!(
            v.text.starts_with(
                "NOT BACKED UP: https://acct.blob.core.windows.net/journal/laptop has not been reached since the reload at 11:05 UTC — "
            ),
            "{}",
            v.text
        );
    }

    #[test]
    fn one_day_is_one_day() {
        assert_eq!(
            expiry_warning(Some(NOW + 40 * 3600), NOW).as_deref(),
            Some(
                "the SAS token expires at 2026-11-20 03:06 UTC (in 1 day): make a new one before then"
            )
        );
        assert_eq!(duration(86400 + 3600), "1 day");
        assert_eq!(duration(2 * 86400), "2 days");
        assert_eq!(duration(3600 + 60), "1 h 1 min");
    }
}
