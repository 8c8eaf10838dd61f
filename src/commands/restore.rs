//! `devlogd restore`: the way back (see [`crate::restore`]). Into the journal root it
//! takes the instance lock and records what it wrote in the index, like `push`; with the
//! daemon running it pauses the daemon through a lease (a control connection held open for
//! the whole restore: the daemon resumes when it closes, however this process ends),
//! restores, and has the daemon record the files (a `push --all` that adopts them,
//! uploading nothing): only one process writes the index. Ctrl-C, SIGTERM and SIGHUP stop
//! it the same way.

use super::{Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::history::AtError;
use crate::protocol::{Command, Line, Request};
use crate::remote::retry::RetryPolicy;
use crate::restore::{RestoreEvent, RestoreOptions, RestoreReport};
use crate::state::StateIndex;
use crate::ui::{human_bytes, printable};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// `devlogd restore`'s command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RestoreArgs {
    /// Restore into this directory instead of the journal root.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// The backup as it was at this time (RFC 3339, or a date: the end of that day in
    /// the local time zone, from TZ).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Show what would be restored; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace local files that differ, keeping each as NAME.local-TIME-RANDOM.EXT.
    #[arg(long)]
    pub overwrite: bool,
    /// Also restore blobs listed without an MD5 (checking only their size).
    #[arg(long)]
    pub allow_unverified: bool,
    /// Print the report as one JSON object on stdout (also on failure).
    #[arg(long)]
    pub json: bool,
    /// Only these files or directories (journal-relative).
    pub paths: Vec<String>,
}

/// A PATH argument as a journal-relative path: absolute paths below the root (or the
/// destination) are made relative; `./` is dropped.
fn relative_path(arg: &str, root: &Path, to: &Path) -> String {
    let p = Path::new(arg);
    for base in [to, root] {
        if let Ok(rel) = p.strip_prefix(base) {
            return rel.to_string_lossy().into_owned();
        }
    }
    arg.trim_start_matches("./").to_string()
}

pub async fn run(config: &Config, args: &RestoreArgs) -> Result<ExitCode, Failure> {
    let at = match &args.at {
        Some(text) => Some(parse_at(text).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?),
        None => None,
    };
    // From here on these signals stop the restore cleanly instead of killing it.
    let stop = stop_signal()?;
    let to = args.to.clone().unwrap_or_else(|| config.root.clone());
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let into_root = canonical(&to) == canonical(&config.root);
    let remote = crate::session::open_remote(config)
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    crate::session::ready(remote.as_ref(), false).await?;
    // The journal's own rules (and its own `.devlogignore`), never the remote's.
    let filter = crate::session::filter_for(config)?;
    let opts = RestoreOptions {
        paths: args
            .paths
            .iter()
            .map(|p| relative_path(p, &config.root, &to))
            .collect(),
        to,
        at,
        dry_run: args.dry_run,
        overwrite: args.overwrite,
        allow_unverified: args.allow_unverified,
        strict_top: args.to.is_some(),
        filter,
        concurrency: config.sync.concurrency.max(32),
        retry: RetryPolicy::default(),
    };
    // Who records the files: this process (holding the lock), the daemon, or nobody
    // (another directory, or a dry run).
    let route = if into_root && !args.dry_run {
        Some(super::push::route(config)?)
    } else {
        None
    };
    let daemon_socket = match &route {
        Some(super::push::Route::Daemon { socket }) => {
            eprintln!(
                "devlogd is running: restoring with it paused, then it records the files ({}).",
                socket.display()
            );
            Some((socket.clone(), pause_lease(socket).await?))
        }
        _ => None,
    };
    let progress = RestoreProgress::new(args.json);
    let on_event = |e| progress.event(e);
    let restore = crate::restore::run(remote.as_ref(), &opts, &on_event);
    let result = tokio::select! {
        result = restore => result,
        // Interrupted: temporary files are removed as their downloads are dropped, and a
        // paused daemon resumes as the lease is dropped.
        _ = stop => {
            progress.finish();
            if let Some((_, lease)) = daemon_socket {
                end_lease(lease).await;
            }
            return Err(Failure::new(
                exit::INTERRUPTED,
                "interrupted; files already restored are in place, run restore again for the rest",
            ));
        }
    };
    progress.finish();
    let recorded = match (&result, &route) {
        (Ok((_, records)), Some(super::push::Route::Direct(_lock))) => {
            let mut state = StateIndex::open(config.state_dir(), &config.remote.identity())
                .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
            state
                .commit(records)
                .map_err(|e| Failure::new(exit::USAGE, e.to_string()))
        }
        _ => Ok(()),
    };
    if let Some((socket, lease)) = daemon_socket {
        let adopted = if result.is_ok() {
            daemon_request(
                &socket,
                Command::Push {
                    flags: crate::push::PushFlags {
                        all: true,
                        ..Default::default()
                    },
                    wait: true,
                    json: false,
                },
            )
            .await
        } else {
            Ok(())
        };
        end_lease(lease).await;
        adopted?;
    }
    recorded?;
    let (report, _) = result.map_err(|e| match e {
        crate::restore::RestoreError::List {
            error: crate::remote::RemoteError::Auth { message },
            remote: name,
        } => Failure::new(
            exit::AUTH,
            format!(
                "{name}: {message}; the credentials came from {}: {}",
                remote.credential_source(),
                crate::push::refusal_hint(&remote.credential_source(), &message)
            ),
        ),
        e @ (crate::restore::RestoreError::Refused { .. }
        | crate::restore::RestoreError::BeforeFirst { .. }) => {
            Failure::new(exit::USAGE, e.to_string())
        }
        e => Failure::new(exit::FILES_FAILED, e.to_string()),
    })?;
    if args.json {
        println!("{}", super::to_json(&report));
    } else {
        println!("{}", summary(&report, &remote.describe()));
    }
    Ok(if report.is_clean() {
        exit::OK
    } else {
        exit::FILES_FAILED
    })
}

/// `--at`: an RFC 3339 time, or a bare date meaning the end of that day in the local time
/// zone (`TZ`), as the person typing it means it.
fn parse_at(text: &str) -> Result<time::OffsetDateTime, AtError> {
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    let Ok(day) = time::Date::parse(text, &date_format) else {
        return crate::history::parse_at(text);
    };
    let end = day.with_hms_nano(23, 59, 59, 999_999_999)?;
    let offset_at = |t: time::OffsetDateTime| {
        time::UtcOffset::local_offset_at(t).map_err(|_| AtError::NoLocalZone(text.to_string()))
    };
    // Asked twice: the first guess may sit on the other side of a daylight-saving change.
    let guess = offset_at(end.assume_utc())?;
    Ok(end.assume_offset(offset_at(end.assume_offset(guess))?))
}

/// Resolves at the first Ctrl-C, SIGTERM or SIGHUP (a closed terminal, a dropped ssh).
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use futures::StreamExt;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // signal-hook, as the daemon: one signal mechanism in the whole program.
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGHUP, SIGINT])
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot handle signals: {e}")))?;
    Ok(async move {
        signals.next().await;
    })
}

/// The daemon paused for as long as the returned connection stays open.
async fn pause_lease(socket: &Path) -> Result<tokio::net::UnixStream, Failure> {
    let mut stream = connect(socket).await?;
    exchange(socket, &mut stream, Command::PauseLease).await?;
    Ok(stream)
}

/// End a pause lease and wait (briefly) until the daemon has taken it back, so that a
/// `ctl status` right after this process exits no longer says paused. A lease that is only
/// dropped (the process killed) ends all the same, a moment later.
async fn end_lease(lease: tokio::net::UnixStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut lease = lease;
    if lease.shutdown().await.is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        lease.read_to_end(&mut answer),
    )
    .await;
}

async fn connect(socket: &Path) -> Result<tokio::net::UnixStream, Failure> {
    tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| lost(socket, e))
}

fn lost(socket: &Path, e: std::io::Error) -> Failure {
    Failure::new(
        exit::NO_DAEMON,
        format!("lost the connection to devlogd ({}): {e}", socket.display()),
    )
}

/// One request to the daemon on its own connection, waiting for its reply.
async fn daemon_request(socket: &Path, cmd: Command) -> Result<(), Failure> {
    let mut stream = connect(socket).await?;
    exchange(socket, &mut stream, cmd).await
}

/// Send `cmd` on `stream` and wait for its reply; progress lines are ignored.
async fn exchange(
    socket: &Path,
    stream: &mut tokio::net::UnixStream,
    cmd: Command,
) -> Result<(), Failure> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let lost = |e: std::io::Error| lost(socket, e);
    let (read, mut write) = stream.split();
    let mut line = serde_json::to_string(&Request::new(cmd))
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    line.push('\n');
    write.write_all(line.as_bytes()).await.map_err(lost)?;
    let mut lines = BufReader::new(read).lines();
    while let Some(text) = lines.next_line().await.map_err(lost)? {
        if let Ok(Line::Reply(reply)) = serde_json::from_str::<Line>(&text) {
            if reply.ok {
                return Ok(());
            }
            return Err(Failure::new(
                reply.code,
                reply.error.unwrap_or_else(|| "devlogd refused".into()),
            ));
        }
    }
    Err(Failure::new(
        exit::NO_DAEMON,
        "devlogd closed the connection without an answer",
    ))
}

/// A bar on a terminal; nothing otherwise (failures are in the summary).
struct RestoreProgress {
    bar: Option<ProgressBar>,
}

impl RestoreProgress {
    fn new(json: bool) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} files {per_sec} {sane_eta}",
            )
            .map(crate::ui::with_sane_eta)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        RestoreProgress { bar }
    }

    fn event(&self, event: RestoreEvent) {
        let Some(bar) = &self.bar else { return };
        match event {
            RestoreEvent::Planned { files, .. } => bar.set_length(files),
            RestoreEvent::Restored { .. } => bar.inc(1),
            RestoreEvent::Failed { path, error } => {
                bar.inc(1);
                bar.println(format!(
                    "failed {}: {}",
                    printable(&path),
                    printable(&error)
                ));
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn summary(r: &RestoreReport, remote: &str) -> String {
    let mut out = String::new();
    let view = match &r.at {
        Some(at) => format!("as of {at}"),
        None => "current".to_string(),
    };
    if r.dry_run {
        let _ = writeln!(
            out,
            "Dry run: restore {remote} ({view}) → {} (nothing was changed)",
            r.to
        );
        for p in &r.would_restore {
            let _ = writeln!(out, "  would restore {}", printable(p));
        }
    } else {
        let _ = writeln!(out, "Restored {remote} ({view}) → {}", r.to);
        let _ = writeln!(
            out,
            "  restored    {} file(s) ({})",
            r.restored,
            human_bytes(r.restored_bytes)
        );
    }
    let _ = writeln!(out, "  unchanged   {} file(s) already there", r.unchanged);
    crate::ui::name_lines(
        &mut out,
        "  kept local  ",
        &r.kept_local,
        ": differs from the remote; left as it is (--overwrite replaces it, keeping a .local copy)",
    );
    for l in &r.replaced_local {
        let _ = writeln!(
            out,
            "  replaced    {}: the local file is kept as {}",
            printable(&l.path),
            printable(&l.kept_as)
        );
    }
    if !r.skipped.is_empty() {
        let names: Vec<String> = r
            .skipped
            .iter()
            .map(|p| printable(p).into_owned())
            .collect();
        let _ = writeln!(
            out,
            "  skipped     {} name(s) a push from here would never upload (hidden, excluded or ignored): {}",
            r.skipped.len(),
            names.join(", ")
        );
    }
    for f in &r.failed {
        let _ = writeln!(
            out,
            "  failed      {}: {}",
            printable(&f.path),
            printable(&f.error)
        );
    }
    let _ = write!(out, "Done in {:.2} s.", r.duration_ms as f64 / 1000.0);
    out
}
