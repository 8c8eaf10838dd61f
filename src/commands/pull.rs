//! `devlogd pull`: one pull pass (see [`crate::pull`]): the remote's changes come down into
//! the journal root and are recorded in the index, so the next push uploads nothing of them
//! and pushes only local changes (and the local side of a conflict). Through the daemon when
//! it runs (only it writes the index), like `push`.

use super::{Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::pull::{PullContext, PullError, PullOptions, PullReport};
use crate::remote::retry::RetryPolicy;
use crate::session::{DamagedIndex, Session};
use crate::ui::printable;
use std::fmt::Write as _;

/// `devlogd pull`'s command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PullArgs {
    /// Show what would come down; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Carry out more local deletes than the mass-delete guard allows.
    #[arg(long)]
    pub allow_deletes: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: &PullArgs) -> Result<ExitCode, Failure> {
    let unlocked = super::push::unlocked_remote(config, true).await?;
    let _lock = match super::push::route(config)? {
        super::push::Route::Direct(lock) => lock,
        // Only the daemon writes the index while it runs: it pulls.
        super::push::Route::Daemon { socket } => {
            if args.dry_run || args.allow_deletes {
                return Err(Failure::usage(
                    "devlogd is running: pull --dry-run and --allow-deletes run only without it (stop the daemon first)",
                ));
            }
            eprintln!(
                "devlogd is running: pulling through it ({}).",
                socket.display()
            );
            let cmd = crate::protocol::Command::Pull { json: args.json };
            return super::ctl::run(&config.dirs, Some(config), cmd).await;
        }
    };
    // A new machine's journal comes from the remote: its root is made here.
    if !args.dry_run && !config.root.exists() {
        crate::fsutil::private_dir_all(&config.root).map_err(|e| {
            Failure::usage(format!(
                "cannot create the journal root {}: {e}",
                config.root.display()
            ))
        })?;
    }
    let session = Session::open_with(config.clone(), unlocked)?;
    crate::session::ready(session.remote.as_ref(), true).await?;
    if !args.dry_run {
        // What a pull (or restore) that was killed left behind.
        crate::restore::temp::sweep_root(&config.root);
    }
    let mut state = session.open_index(DamagedIndex::Refuse)?;
    let Session { filter, remote, .. } = session;
    let own_tag = crate::journal::events::machine_tag();
    let ctx = PullContext {
        root: &config.root,
        filter: &filter,
        remote: remote.as_ref(),
        state: &mut state,
        own_tag: &own_tag,
    };
    let opts = PullOptions {
        dry_run: args.dry_run,
        allow_deletes: args.allow_deletes,
        concurrency: config.sync.concurrency.max(32),
        retry: RetryPolicy::default(),
    };
    let report = crate::pull::run(ctx, &opts).await.map_err(|e| match e {
        PullError::List { error, .. } => super::listing_failure(remote.as_ref(), error),
        PullError::Index(e) => Failure::usage(e.to_string()),
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

/// The human summary: a line of counts, then what needs the user.
pub fn summary(r: &PullReport, remote: &str) -> String {
    let would = if r.dry_run { "would be " } else { "" };
    let mut out = format!(
        "Pulled from {remote}: {} {would}downloaded ({}), {} {would}deleted, {} conflict{}, {} local change{} to push.",
        r.downloaded.len(),
        crate::ui::human_bytes(r.downloaded_bytes),
        r.deleted.len(),
        r.conflicts.len(),
        if r.conflicts.len() == 1 { "" } else { "s" },
        r.to_push,
        if r.to_push == 1 { "" } else { "s" },
    );
    for c in &r.conflicts {
        let _ = write!(
            out,
            "\n  conflict: {} changed here and on the remote; the remote's version is in {}",
            printable(&c.path),
            printable(&c.conflict_file)
        );
    }
    if !r.held_deletes.is_empty() {
        let _ = write!(
            out,
            "\n  {} local deletes held by the mass-delete guard (pull --allow-deletes carries them out):",
            r.held_deletes.len()
        );
        for p in r.held_deletes.iter().take(10) {
            let _ = write!(out, "\n    {}", printable(p));
        }
    }
    for p in &r.changed_meanwhile {
        let _ = write!(
            out,
            "\n  {} changed while pulling; left for the next pass",
            printable(p)
        );
    }
    for p in &r.clashes {
        let _ = write!(
            out,
            "\n  {}: a file on one side, a directory or link on the other; nothing moved",
            printable(p)
        );
    }
    for p in &r.damaged {
        let _ = write!(
            out,
            "\n  {}: the remote's bytes no longer match their MD5; not downloaded",
            printable(p)
        );
    }
    for f in &r.failed {
        let _ = write!(out, "\n  failed: {}: {}", printable(&f.path), f.error);
    }
    if !r.skipped.is_empty() {
        let _ = write!(
            out,
            "\n  {} remote names a push from here would never upload were not written",
            r.skipped.len()
        );
    }
    out
}
