//! `devlogd conflicts --resolve PATH --keep mine|theirs`: settle a two-way conflict in one
//! command. `mine` deletes PATH's sync-conflict files; `theirs` puts the one conflict file in
//! place of PATH. Either way nothing is lost: a file is removed or replaced only while it is
//! on the remote as it is here (same MD5 in the listing), so the version that goes is in the
//! remote history once the change is pushed. The push follows at once: the running daemon
//! sees the change, otherwise this process pushes.

use super::{Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::fsutil::Beneath;
use crate::ui::printable;
use serde::Serialize;
use std::collections::HashMap;

/// Which version stays at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The file at the path; its conflict files go.
    Mine,
    /// The (one) conflict file's version, put at the path.
    Theirs,
}

#[derive(Debug, Serialize)]
struct ResolveReport {
    path: String,
    keep: Keep,
    /// Conflict files removed here (their delete goes up with the push).
    removed: Vec<String>,
    /// With `theirs`: the conflict file now at the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    moved: Option<String>,
    /// The host whose version is at the path now (as the remote or the conflict file's
    /// name has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_host: Option<String>,
    /// `daemon` (the running daemon pushes it) or `here` (this command pushed).
    pushed_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<crate::push::PushReport>,
}

pub async fn run(config: &Config, path: &str, keep: Keep, json: bool) -> Result<ExitCode, Failure> {
    let rel = super::journal_path::resolve(config, path)?;
    if crate::names::conflict_original(&rel).is_some() {
        return Err(usage(format!(
            "{} is itself a conflict file: name the file it belongs to",
            printable(&rel)
        )));
    }
    let unlocked = super::push::unlocked_remote(config, false).await?;
    let route = super::push::route(config)?;
    let session = crate::session::Session::open_with(config.clone(), unlocked)?;
    crate::session::ready(session.remote.as_ref(), false).await?;
    let listing = session
        .remote
        .list()
        .await
        .map_err(|e| super::listing_failure(session.remote.as_ref(), e))?;
    let listed: HashMap<&str, Option<[u8; 16]>> =
        listing.iter().map(|b| (b.name.as_str(), b.md5)).collect();
    let root = Beneath::open(&config.root).map_err(|e| {
        usage(format!(
            "cannot open the journal root {}: {e}",
            config.root.display()
        ))
    })?;
    let (dir_rel, _) = crate::restore::split(&rel);
    let dir = root.open_dir(dir_rel, false).map_err(|e| {
        usage(format!(
            "cannot read the directory of {}: {e}",
            printable(&rel)
        ))
    })?;
    let mut files: Vec<String> = dir
        .names()
        .map_err(|e| {
            usage(format!(
                "cannot read the directory of {}: {e}",
                printable(&rel)
            ))
        })?
        .into_iter()
        .map(|name| {
            format!(
                "{dir_rel}{}{name}",
                if dir_rel.is_empty() { "" } else { "/" }
            )
        })
        .filter(|f| crate::names::parse_sync_conflict(f).is_some_and(|c| c.original == rel))
        .collect();
    files.sort();
    // Conflict files another machine pushed that have not come down here yet.
    let elsewhere: Vec<&str> = listing
        .iter()
        .map(|b| b.name.as_str())
        .filter(|n| crate::names::parse_sync_conflict(n).is_some_and(|c| c.original == rel))
        .filter(|n| !files.iter().any(|f| f == n))
        .collect();
    if !elsewhere.is_empty() {
        return Err(usage(format!(
            "{} has conflict files on the remote that are not here yet ({}): run devlogd pull first",
            printable(&rel),
            printable(&elsewhere.join(", "))
        )));
    }
    if files.is_empty() {
        return Err(usage(format!(
            "{} has no sync-conflict files here: nothing to resolve",
            printable(&rel)
        )));
    }
    // Only what the remote holds as it is here goes: then it is in the history.
    let on_remote = |f: &str| -> Result<(), Failure> {
        let here = root
            .open_file(f)
            .and_then(crate::fsutil::md5_of_reader)
            .map_err(|e| usage(format!("cannot read {}: {e}", printable(f))))?;
        match listed.get(f) {
            Some(Some(md5)) if *md5 == here.0 => Ok(()),
            _ => Err(usage(format!(
                "{} is not on the remote as it is here (changed, or not pushed yet): push first, or settle it by hand",
                printable(f)
            ))),
        }
    };
    let mut report = ResolveReport {
        path: rel.clone(),
        keep,
        removed: Vec::new(),
        moved: None,
        kept_host: None,
        pushed_by: "daemon",
        push: None,
    };
    let name_of = |f: &str| f.rsplit('/').next().unwrap_or(f).to_string();
    match keep {
        Keep::Mine => {
            report.kept_host = listing
                .iter()
                .find(|b| b.name == rel)
                .and_then(|b| b.host.clone());
            for f in &files {
                on_remote(f)?;
            }
            for f in files {
                dir.unlink_here(&name_of(&f))
                    .map_err(|e| usage(format!("cannot delete {}: {e}", printable(&f))))?;
                report.removed.push(f);
            }
        }
        Keep::Theirs => {
            let [theirs] = files.as_slice() else {
                return Err(usage(format!(
                    "{} has {} conflict files ({}): delete the ones you do not want, then run this again",
                    printable(&rel),
                    files.len(),
                    printable(&files.join(", "))
                )));
            };
            on_remote(&rel)?;
            dir.rename_to(&name_of(theirs), &dir, &name_of(&rel))
                .map_err(|e| usage(format!("cannot move {}: {e}", printable(theirs))))?;
            dir.sync();
            report.kept_host = host_of(theirs);
            report.moved = Some(theirs.clone());
        }
    }
    if let super::push::Route::Direct(_lock) = route {
        report.pushed_by = "here";
        let progress = crate::ui::Progress::new(true);
        let pushed = super::push::push_here(
            config,
            Some(session.remote.clone()),
            Default::default(),
            &progress,
        )
        .await?;
        match pushed.outcome {
            Ok(push) => report.push = Some(push),
            Err(e) => {
                print(&report, json);
                return Err(Failure::new(
                    e.exit_code(),
                    format!("resolved here, but the push failed: {e}; run devlogd push"),
                ));
            }
        }
    }
    print(&report, json);
    Ok(report
        .push
        .as_ref()
        .map(|p| p.exit_code())
        .unwrap_or(exit::OK))
}

fn print(report: &ResolveReport, json: bool) {
    if json {
        println!("{}", super::to_json(report));
        return;
    }
    // Which version stayed and where the one that went is, by host: "yours" reads the
    // wrong way round on the machine whose own edit is the conflict file.
    let path = printable(&report.path);
    let whose = |host: Option<&str>| {
        host.map(|h| format!("{}'s", printable(h)))
            .unwrap_or_else(|| "another writer's".into())
    };
    match &report.moved {
        Some(from) => println!(
            "{path}: kept {} version ({} is now {path}); the version that was at the path is still in the remote history: devlogd history {path}",
            whose(report.kept_host.as_deref()),
            printable(from)
        ),
        None => {
            let gone: Vec<String> = (report.removed.iter())
                .map(|f| {
                    format!(
                        "{} ({} version, still in the remote history: devlogd history {})",
                        printable(f),
                        whose(host_of(f).as_deref()),
                        printable(f)
                    )
                })
                .collect();
            println!(
                "{path}: kept the version at the path ({}); deleted {}",
                whose(report.kept_host.as_deref()),
                gone.join(", ")
            );
        }
    }
    match &report.push {
        Some(push) => println!(
            "Pushed: {} uploaded, {} deleted; the other machines follow at their next pull (the replaced version stays in the history).",
            push.uploaded,
            push.deleted.len()
        ),
        None => println!(
            "devlogd is running: it pushes this now; the other machines follow at their next pull."
        ),
    }
}

fn usage(message: String) -> Failure {
    Failure::new(exit::USAGE, message)
}

/// The host a conflict file's name says holds its version.
fn host_of(conflict_file: &str) -> Option<String> {
    crate::names::parse_sync_conflict(conflict_file).map(|c| c.host)
}
