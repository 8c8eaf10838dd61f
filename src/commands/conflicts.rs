//! `devlogd conflicts [--fetch]`: the paths another writer changed too, and (with
//! `--fetch`) the other versions downloaded next to the local files as `<name>.theirs`,
//! to merge by hand. Writes nothing else; never replaces a local file; fetches only versions
//! of names a push from here would upload, each checked against the listing.

use super::{Failure, exit};
use crate::config::Config;
use crate::conflicts::{self, Conflict};
use crate::exit::ExitCode;
use crate::remote::retry::RetryPolicy;
use crate::ui::printable;
use serde::Serialize;

/// What `--json` prints.
#[derive(Debug, Default, Serialize)]
struct ConflictsReport {
    conflicts: Vec<Conflict>,
    /// Two-way sync's conflict files (`NAME.sync-conflict-…-HOST.EXT`), here or on the
    /// remote: each holds another version of its path, waiting for the user.
    sync_conflicts: Vec<SyncConflictFile>,
    fetched: Vec<Fetched>,
    /// Versions not fetched because a push from here would never upload their name
    /// (hidden, excluded, ignored).
    skipped: Vec<String>,
    failed: Vec<crate::restore::RestoreFailure>,
}

#[derive(Debug, Serialize)]
struct SyncConflictFile {
    /// The conflict file, relative to the journal root (and below the prefix).
    file: String,
    /// The path it is a version of.
    path: String,
    /// The host whose version it holds, as its name says.
    host: String,
    /// When that version was stored (UTC, `YYYYMMDD-HHMMSS`).
    stamp: String,
    here: bool,
    on_remote: bool,
    /// It holds this machine's own earlier version (another machine's edit took the path):
    /// the path's history has this content written by this machine's writer id.
    own_version: bool,
}

/// Which conflict files hold this machine's own version: their content is in the path's
/// history, written by this machine's writer id (one history listing per conflicted path).
async fn mark_own_versions(
    remote: &dyn crate::remote::Remote,
    listing: &[crate::remote::RemoteBlob],
    own: Option<&str>,
    files: &mut [SyncConflictFile],
) {
    let Some(own) = own else { return };
    let md5_of: std::collections::HashMap<&str, [u8; 16]> = listing
        .iter()
        .filter_map(|b| Some((b.name.as_str(), b.md5?)))
        .collect();
    let mut history: std::collections::HashMap<String, Vec<crate::remote::RemoteBlob>> =
        Default::default();
    for f in files.iter_mut() {
        let Some(md5) = md5_of.get(f.file.as_str()) else {
            continue;
        };
        if !history.contains_key(&f.path) {
            let kept = remote.list_history(Some(&f.path)).await.unwrap_or_default();
            history.insert(f.path.clone(), kept);
        }
        f.own_version = history[&f.path].iter().any(|v| {
            crate::history::original_path(&v.name) == Some(f.path.as_str())
                && v.md5.as_ref() == Some(md5)
                && v.writer.as_deref() == Some(own)
        });
    }
}

/// The sync-conflict files among the local and the remote names, sorted by path.
fn sync_conflict_files<'a>(
    local: impl Iterator<Item = &'a str>,
    remote: impl Iterator<Item = &'a str>,
) -> Vec<SyncConflictFile> {
    let mut by_file: std::collections::BTreeMap<String, SyncConflictFile> = Default::default();
    let mut add = |name: &str, here: bool| {
        let Some(c) = crate::names::parse_sync_conflict(name) else {
            return;
        };
        let entry = by_file
            .entry(name.to_string())
            .or_insert_with(|| SyncConflictFile {
                file: name.to_string(),
                path: c.original,
                host: c.host,
                stamp: c.stamp,
                here: false,
                on_remote: false,
                own_version: false,
            });
        if here {
            entry.here = true;
        } else {
            entry.on_remote = true;
        }
    };
    local.for_each(|n| add(n, true));
    remote.for_each(|n| add(n, false));
    let mut files: Vec<SyncConflictFile> = by_file.into_values().collect();
    files.sort_by(|a, b| (&a.path, &a.file).cmp(&(&b.path, &b.file)));
    files
}

#[derive(Debug, Serialize)]
struct Fetched {
    /// The remote version fetched (below the prefix).
    blob: String,
    /// Where it went, relative to the journal root.
    to: String,
    bytes: u64,
}

/// The local name a fetched version gets: its remote name plus `.theirs` (not matched by
/// the default include rules, so it is never pushed back).
pub fn theirs_name(blob: &str) -> String {
    format!("{blob}.theirs")
}

pub async fn run(config: &Config, fetch: bool, json: bool) -> Result<ExitCode, Failure> {
    let session = crate::session::Session::open(config.clone())?;
    crate::session::ready(session.remote.as_ref(), false).await?;
    let flagged = session.conflict_paths();
    let own_writer = session.own_writer();
    let filter = session.filter;
    let remote = session.remote;
    let listing = remote
        .list()
        .await
        .map_err(|e| super::listing_failure(remote.as_ref(), e))?;
    let scan = crate::scan::scan_root(&config.root, &filter);
    let mut report = ConflictsReport {
        conflicts: conflicts::find(&listing, &flagged),
        sync_conflicts: sync_conflict_files(
            scan.files.iter().map(|f| f.rel.as_str()),
            listing.iter().map(|b| b.name.as_str()),
        ),
        ..Default::default()
    };
    mark_own_versions(
        remote.as_ref(),
        &listing,
        own_writer.as_deref(),
        &mut report.sync_conflicts,
    )
    .await;
    if fetch && !report.conflicts.is_empty() {
        let root = crate::fsutil::Beneath::open(&config.root).map_err(|e| {
            Failure::new(
                exit::USAGE,
                format!(
                    "cannot open the journal root {}: {e}",
                    config.root.display()
                ),
            )
        })?;
        // What the listing promised for each blob: the download is checked against it.
        let listed: std::collections::HashMap<&str, crate::restore::Expected> = listing
            .iter()
            .map(|b| {
                let expected = crate::restore::Expected {
                    size: b.size,
                    md5: b.md5,
                };
                (b.name.as_str(), expected)
            })
            .collect();
        for blob in versions_to_fetch(&report.conflicts) {
            let to = theirs_name(&blob);
            let expected = match listed.get(blob.as_str()) {
                // The names a push would upload, and only those (the blob-name rules
                // included: no control or format characters in a local file name).
                Some(e) if crate::restore::would_push(&filter, &blob, &remote.name_prefix()) => *e,
                Some(_) => {
                    report.skipped.push(blob);
                    continue;
                }
                None => {
                    let error = format!("{blob} is not in the listing");
                    report
                        .failed
                        .push(crate::restore::RestoreFailure { path: to, error });
                    continue;
                }
            };
            match crate::restore::fetch_new(
                remote.as_ref(),
                &root,
                &blob,
                expected,
                &to,
                RetryPolicy::default(),
            )
            .await
            {
                Ok(bytes) => report.fetched.push(Fetched { blob, to, bytes }),
                Err(e) => report.failed.push(crate::restore::RestoreFailure {
                    path: to,
                    error: e.to_string(),
                }),
            }
        }
    }
    if json {
        println!("{}", super::to_json(&report));
    } else {
        println!("{}", text(&report, &remote.describe(), fetch));
    }
    Ok(if report.failed.is_empty() {
        exit::OK
    } else {
        exit::FILES_FAILED
    })
}

/// The other writers' versions: the blob at a flagged path (ours differs), and every
/// conflict copy of a path that is not flagged here (the copy is the other writer's).
fn versions_to_fetch(found: &[Conflict]) -> Vec<String> {
    let mut blobs = Vec::new();
    for c in found {
        if c.theirs_at_path {
            blobs.push(c.path.clone());
        } else {
            blobs.extend(c.copies.iter().map(|copy| copy.name.clone()));
        }
    }
    blobs
}

/// `20261203-163326` → `2026-12-03 16:33:26 UTC`.
fn stamp_text(stamp: &str) -> String {
    match (
        stamp.get(..4),
        stamp.get(4..6),
        stamp.get(6..8),
        stamp.get(9..11),
        stamp.get(11..13),
        stamp.get(13..15),
    ) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => {
            format!("{y}-{mo}-{d} {h}:{mi}:{s} UTC")
        }
        _ => stamp.to_string(),
    }
}

fn text(report: &ConflictsReport, remote: &str, fetch: bool) -> String {
    let mut lines = Vec::new();
    if report.conflicts.is_empty() && report.sync_conflicts.is_empty() {
        lines.push(format!("No conflicts on {remote}."));
        return lines.join("\n");
    }
    if !report.sync_conflicts.is_empty() {
        lines.push(format!(
            "{} conflict file(s) waiting for you (the other version of a file two machines changed at once):",
            report.sync_conflicts.len()
        ));

        for c in &report.sync_conflicts {
            let where_ = match (c.here, c.on_remote) {
                (true, true) => "",
                (true, false) => ", not pushed yet",
                (false, _) => ", on the remote, not pulled here yet",
            };
            // The machine whose version lost the race for the path finds its own edit in
            // the conflict file: say so, or "keep mine" reads the wrong way round.
            let whose = if c.own_version {
                format!(
                    "this machine's own version of {}; another machine's edit is at the path now",
                    stamp_text(&c.stamp)
                )
            } else {
                format!(
                    "{}'s version of {}",
                    printable(&c.host),
                    stamp_text(&c.stamp)
                )
            };
            lines.push(format!(
                "  {} ← {} ({whose}{where_})",
                printable(&c.path),
                printable(&c.file),
            ));
        }
        lines.push(
            "To settle one: devlogd conflicts --resolve PATH --keep mine (the file at PATH as it is here) or --keep theirs (the conflict file's version); or merge by hand and delete the conflict file."
                .into(),
        );
        if report.conflicts.is_empty() {
            return lines.join("\n");
        }
    }
    lines.push(format!(
        "{} path(s) on {remote} another writer changed too:",
        report.conflicts.len()
    ));
    for c in &report.conflicts {
        lines.push(format!("  {}", printable(&c.path)));
        if c.theirs_at_path {
            let writer = c
                .writer_at_path
                .as_deref()
                .map(|w| format!(" by writer {}", printable(w)))
                .unwrap_or_default();
            let when = c
                .written_at_path
                .as_deref()
                .map(|w| format!(" at {}", printable(w)))
                .unwrap_or_default();
            lines.push(format!(
                "      the remote holds another version (written{writer}{when}); yours here differs"
            ));
        }
        for copy in &c.copies {
            lines.push(format!(
                "      conflict copy {} (made by {} at {})",
                printable(&copy.name),
                printable(&copy.host),
                copy.when
            ));
        }
    }
    lines.extend(report.fetched.iter().map(|f| {
        let (blob, to) = (printable(&f.blob), printable(&f.to));
        format!("fetched {blob} → {to} ({} bytes)", f.bytes)
    }));
    let never = "a push from here would never upload that name (hidden, excluded or ignored)";
    let skipped = report.skipped.iter().map(|s| (s, never));
    let failed = report.failed.iter().map(|f| (&f.path, f.error.as_str()));
    for (path, why) in skipped.chain(failed) {
        lines.push(format!(
            "not fetched {}: {}",
            printable(path),
            printable(why)
        ));
    }
    if !fetch {
        lines.push(format!("To resolve: {}.", conflicts::RESOLVE_HINT));
    } else {
        lines.push(
            "Merge each .theirs file into its local file, push, then delete the .theirs file and the conflict copies."
                .into(),
        );
    }
    lines.join("\n")
}
