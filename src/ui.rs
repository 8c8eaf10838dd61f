//! Terminal front end for pushes: a progress bar on a terminal, plain lines otherwise,
//! and the human summary. `--json` bypasses all of it. Also how a command ends when its
//! output is closed under it ([`end_quietly_on_closed_output`]).

use crate::push::{PushEvent, PushReport};
use crate::verify::VerifyReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Receives [`PushEvent`]s while a push runs.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    files_total: AtomicU64,
    files_done: AtomicU64,
    /// A retry was reported and nothing has gone through since.
    retrying: AtomicBool,
    lines: Mutex<()>,
}

/// The remaining time as the bar shows it: nothing until there is something to estimate
/// from (a second gone and 2 % done: a run of many small uploads in flight at once finishes
/// its first ones late, and indicatif's `{eta}` then said "6d" for a 4 s push), then the
/// average rate so far, rounded for people.
pub fn eta_text(elapsed: std::time::Duration, pos: u64, len: u64) -> String {
    if len == 0 || pos == 0 || pos >= len || elapsed.as_millis() < 1000 || pos * 50 < len {
        return String::new();
    }
    let left = elapsed.as_secs_f64() * (len - pos) as f64 / pos as f64;
    match left.round() as u64 {
        s if s < 60 => format!("ETA {s}s"),
        s if s < 3600 => format!("ETA {}m{:02}s", s / 60, s % 60),
        s => format!("ETA {}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `style` with the `{sane_eta}` key ([`eta_text`]).
pub fn with_sane_eta(style: ProgressStyle) -> ProgressStyle {
    style.with_key(
        "sane_eta",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&eta_text(
                state.elapsed(),
                state.pos(),
                state.len().unwrap_or(0),
            ));
        },
    )
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines when not, silence for `--json`.
    pub fn new(json: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (!json && tty).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{bar:30}] {msg} {bytes}/{total_bytes} {binary_bytes_per_sec} {sane_eta}",
            )
            .map(with_sane_eta)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            plain: !json && !tty,
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            retrying: AtomicBool::new(false),
            lines: Mutex::new(()),
        }
    }

    pub fn event(&self, event: PushEvent) {
        match event {
            PushEvent::Planned { files, bytes } => {
                self.files_total.store(files, Ordering::Relaxed);
                if let Some(bar) = &self.bar {
                    bar.set_length(bytes);
                    bar.set_message(format!("0/{files} files"));
                }
            }
            PushEvent::Uploaded { path, bytes } => {
                self.retrying.store(false, Ordering::Relaxed);
                let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(bar) = &self.bar {
                    bar.inc(bytes);
                    bar.set_message(format!(
                        "{done}/{} files",
                        self.files_total.load(Ordering::Relaxed)
                    ));
                } else if self.plain {
                    self.line(&format!("uploaded {path} ({})", human_bytes(bytes)));
                }
            }
            PushEvent::Failed { path, error } => {
                self.line(&format!("failed {path}: {error}"));
            }
            PushEvent::Retrying { path, error } => {
                // One line per trouble, not per retry of every file in flight.
                if !self.retrying.swap(true, Ordering::Relaxed) {
                    self.line(&format!("retrying {path}: {error}"));
                }
            }
            PushEvent::Conflict { path, action, copy } => {
                let what = match copy {
                    Some(copy) => format!("conflict {path}: kept both, ours is {copy}"),
                    None => format!("conflict {path}: {action}"),
                };
                self.line(&what);
            }
        }
    }

    fn line(&self, text: &str) {
        let text = &*printable(text); // names cannot forge lines or reach the terminal raw
        if let Some(bar) = &self.bar {
            bar.println(text);
        } else if self.plain {
            let _guard = self.lines.lock();
            eprintln!("{text}");
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One line per name, `{head}{name}{tail}`, the name escaped for the terminal.
pub fn name_lines(out: &mut String, head: &str, names: &[String], tail: &str) {
    for name in names {
        let _ = writeln!(out, "{head}{}{tail}", printable(name));
    }
}

/// The first five of `names`, printable, and how many more there are.
fn first_names(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(5)
        .map(|n| printable(n).into_owned())
        .collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The human summary of a push.
pub fn push_summary(report: &PushReport, root: &str, remote: &str) -> String {
    let mut out = String::new();
    let secs = report.duration_ms as f64 / 1000.0;
    if report.dry_run {
        let _ = writeln!(out, "Dry run: {root} → {remote} (nothing was changed)");
        if report.would_upload.is_empty() {
            let _ = writeln!(out, "  would upload nothing");
        } else {
            let bytes: u64 = report.would_upload.iter().map(|u| u.bytes).sum();
            let _ = writeln!(
                out,
                "  would upload {} ({}):",
                files(report.would_upload.len() as u64),
                human_bytes(bytes)
            );
            for u in &report.would_upload {
                let reason = serde_json::to_value(u.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let _ = writeln!(out, "    {reason:<17} {}", printable(&u.path));
            }
        }
    } else {
        let _ = writeln!(out, "Pushed {root} → {remote}");
        if let Some(container) = &report.created_container {
            let _ = writeln!(
                out,
                "  created container {} (it did not exist; check the name if you expected it to)",
                printable(container)
            );
        }
        let _ = writeln!(
            out,
            "  uploaded    {} ({})",
            files(report.uploaded),
            human_bytes(report.uploaded_bytes)
        );
    }
    let _ = writeln!(out, "  unchanged   {}", files(report.unchanged));
    if !report.deleted.is_empty() {
        let _ = writeln!(
            out,
            "  deleted     {} (removed remotely; last content kept in the history)",
            files(report.deleted.len() as u64)
        );
        // The undo, named where the delete is reported: the time just before this push.
        let before = time::OffsetDateTime::now_utc()
            - time::Duration::milliseconds(report.duration_ms as i64 + 1000);
        let _ = writeln!(
            out,
            "              not meant? devlogd restore --at {} brings them back",
            crate::history::rfc3339_seconds(before)
        );
    }
    name_lines(&mut out, "    delete            ", &report.would_delete, "");
    let held = report
        .held_reason
        .as_deref()
        .unwrap_or("more than it allows");
    let refused = (report.refused_reason.as_deref()).unwrap_or("the credentials may not delete");
    for (what, names, why) in [
        (
            "HELD",
            &report.held_deletes,
            format!(
                "held by the mass-delete guard ({held}); nothing was removed remotely: push with --allow-deletes if this was intended"
            ),
        ),
        (
            "REFUSED",
            &report.refused_deletes,
            format!("still on the remote: {refused}"),
        ),
    ] {
        if !names.is_empty() {
            let n = files(names.len() as u64);
            let _ = writeln!(out, "  deletes {what} {n} deleted locally, {why}");
        }
    }
    name_lines(
        &mut out,
        "  repaired    ",
        &report.repaired_corrupt,
        ": the stored copy was damaged; replaced with the local file (the damaged copy kept in the history)",
    );
    let corrupt = if report.dry_run {
        ": the stored copy is damaged (its bytes no longer match the MD5 written with it); push --all repairs it if the local file holds that version"
    } else {
        ": the stored copy is damaged (its bytes no longer match the MD5 written with it); not repaired (no local file holds that version, or its upload failed)"
    };
    name_lines(&mut out, "  corrupt     ", &report.corrupt, corrupt);
    for c in &report.conflicts {
        match &c.copy {
            Some(copy) => {
                let _ = writeln!(
                    out,
                    "  conflict    {}: changed by another writer; kept theirs, ours is {}",
                    printable(&c.path),
                    printable(copy)
                );
            }
            None => {
                let _ = writeln!(out, "  conflict    {}: {}", printable(&c.path), c.action);
            }
        }
    }
    for f in &report.failed {
        let path = if f.path.is_empty() {
            "(root)".into()
        } else {
            printable(&f.path)
        };
        let _ = writeln!(out, "  failed      {path}: {}", printable(&f.error));
    }
    name_lines(
        &mut out,
        "  changing    ",
        &report.changed_during_upload,
        ": modified while uploading; pushed again next time",
    );
    if !report.remote_only.is_empty() {
        let _ = writeln!(
            out,
            "  remote only {} with no local file (kept, never deleted): {}",
            report.remote_only.len(),
            first_names(&report.remote_only)
        );
    }
    if !report.remote_excluded.is_empty() {
        let _ = writeln!(
            out,
            "  excluded here {} (the remote keeps its last version): {}",
            report.remote_excluded.len(),
            first_names(&report.remote_excluded)
        );
    }
    let _ = write!(out, "Done in {secs:.2} s");
    if !report.failed.is_empty() {
        let _ = write!(out, "; {} failed", files(report.failed.len() as u64));
    }
    out.push('.');
    out
}

/// The human output of `verify`.
pub fn verify_summary(report: &VerifyReport, root: &str, remote: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Verified {root} against {remote}");
    name_lines(&mut out, "  differs            ", &report.differs, "");
    name_lines(
        &mut out,
        "  corrupt            ",
        &report.corrupt,
        " (the stored copy is damaged: its bytes no longer match the MD5 written with it; `devlogd push --all` repairs it from the local file)",
    );
    name_lines(
        &mut out,
        "  conflict           ",
        &report.conflicts,
        " (another writer changed it too)",
    );
    name_lines(
        &mut out,
        "  missing on remote  ",
        &report.missing_on_remote,
        "",
    );
    for f in &report.unreadable {
        let _ = writeln!(
            out,
            "  unreadable         {}: {}",
            printable(&f.path),
            printable(&f.error)
        );
    }
    name_lines(
        &mut out,
        "  only on remote     ",
        &report.only_on_remote,
        "",
    );
    name_lines(
        &mut out,
        "  excluded here      ",
        &report.excluded,
        " (the rules exclude it here; the remote keeps its last version)",
    );
    let _ = write!(
        out,
        "{} in sync, {} differ, {} in conflict, {} missing on remote, {} only on remote, {} unreadable",
        report.in_sync,
        report.differs.len(),
        report.conflicts.len(),
        report.missing_on_remote.len(),
        report.only_on_remote.len(),
        report.unreadable.len()
    );
    if !report.excluded.is_empty() {
        let _ = write!(out, ", {} excluded here", report.excluded.len());
    }
    let repairable = !report.differs.is_empty()
        || !report.missing_on_remote.is_empty()
        || !report.unreadable.is_empty();
    if repairable {
        // --all finds blobs missing or changed on the remote; --checksum finds local
        // edits whose size and times did not move.
        out.push_str("\nTo repair what differs: run `devlogd push --all --checksum`.");
    }
    if !report.conflicts.is_empty() {
        // A push does not resolve these: another writer's version is at the path.
        let _ = write!(out, "\nConflicts: {}.", crate::conflicts::RESOLVE_HINT);
    }
    out
}

pub use crate::redact::printable;

/// A closed stdout or stderr (`devlogd history x | head -1`) ends a command as it ends `cat`:
/// quietly, by SIGPIPE. Rust ignores SIGPIPE, so `println!` panics on a closed pipe; this hook
/// turns that one panic (std's message for a write that failed with EPIPE) into SIGPIPE's
/// default action, so every print in every command is covered without a panic message or
/// "Broken pipe" noise. Every other panic goes to the hook that was there. The front ends
/// install it first thing; the daemon does not (its control socket must never end it).
pub fn end_quietly_on_closed_output() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_output(info.payload()) {
            // Ends the process here (default action restored, then raised).
            let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGPIPE);
            std::process::exit(128 + signal_hook::consts::SIGPIPE);
        }
        previous(info);
    }));
}

/// Whether a panic is std's "failed printing to stdout/stderr" for a closed pipe.
fn is_closed_output(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    message.starts_with("failed printing to std")
        && message.ends_with(&format!(
            "(os error {})",
            rustix::io::Errno::PIPE.raw_os_error()
        ))
}

fn files(n: u64) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_waits_for_something_to_estimate_from() {
        use std::time::Duration;
        // The first uploads of many in flight finish late: no "6d" guess from them.
        assert_eq!(eta_text(Duration::from_millis(300), 1, 1000), "");
        assert_eq!(eta_text(Duration::from_secs(2), 10, 1000), "");
        assert_eq!(eta_text(Duration::from_secs(2), 500, 1000), "ETA 2s");
        assert_eq!(eta_text(Duration::from_secs(60), 100, 400), "ETA 3m00s");
        assert_eq!(eta_text(Duration::from_secs(5), 1000, 1000), "");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
    }

    #[test]
    fn only_a_print_to_a_closed_pipe_counts_as_closed_output() {
        let closed = format!(
            "failed printing to stdout: {}",
            std::io::Error::from_raw_os_error(rustix::io::Errno::PIPE.raw_os_error())
        );
        assert!(is_closed_output(&closed));
        assert!(is_closed_output(&closed.replace("stdout", "stderr")));
        let full = format!(
            "failed printing to stdout: {}",
            std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error())
        );
        assert!(!is_closed_output(&full));
        assert!(!is_closed_output(&"index out of bounds"));
        assert!(!is_closed_output(&42));
    }

    #[test]
    fn names_cannot_forge_lines_or_reach_the_terminal_raw() {
        assert_eq!(printable("a.md"), "a.md");
        assert_eq!(
            printable("x\nAll files match.\u{1b}]0;t\u{7}"),
            "x\\nAll files match.\\u{1b}]0;t\\u{7}"
        );
    }
}
