//! The planning stage: scan the root (or a daemon batch's paths), read the index rows, list
//! the remote when asked, and decide per file ([`crate::plan::decide`]) whether it is in
//! sync, needs only a new index row, must be uploaded, or goes to the conflict policy.

use super::PushOptions;
use super::report::{
    ConflictReport, FileFailure, PlannedUpload, PushError, PushReport, read_error,
};
use crate::filter::Filter;
use crate::fsutil::Beneath;
use crate::plan::{self, Decision, RemoteView, UploadReason};
use crate::remote::{Precondition, Remote, RemoteBlob, RemoteError};
use crate::scan::{self, LocalFile};
use crate::state::{IndexEntry, Record, StateIndex};
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub(super) struct Job {
    pub file: LocalFile,
    pub action: JobAction,
    /// The MD5 the index recorded for the version at the remote, if any: a forced
    /// re-upload of the same bytes replaces nothing worth keeping in history.
    pub known_md5: Option<[u8; 16]>,
}

pub(super) enum JobAction {
    Put {
        reason: UploadReason,
        precondition: Precondition,
    },
    /// Planning already knows the blob is another writer's: go straight to the policy.
    Conflict,
}

/// The candidates found, with what the index knows of them.
pub(super) struct Scanned {
    pub files: Vec<LocalFile>,
    pub index: HashMap<String, IndexEntry>,
}

/// Scan and read the index; files that cannot be scanned, or whose path cannot be a blob
/// name of its own, go to the report as failures.
pub(super) fn scan(
    root: &Path,
    filter: &Filter,
    state: &StateIndex,
    remote: &dyn Remote,
    opts: &PushOptions,
    report: &mut PushReport,
) -> Result<Scanned, PushError> {
    let (scanned, index) = match &opts.paths {
        // A batch: scan the named paths (directories among them are walked), then read
        // the index rows of exactly the files found.
        Some(paths) => {
            let scanned = scan::scan_paths(root, filter, paths);
            let index = state.load_paths(scanned.files.iter().map(|f| f.rel.as_str()));
            (scanned, index)
        }
        // A full pass: walk and read the whole index at the same time (both I/O-bound).
        None => std::thread::scope(|s| {
            let scan = s.spawn(|| scan::scan_root(root, filter));
            let index = state.load();
            (scan.join().unwrap_or_default(), index)
        }),
    };
    let index = index?;
    for issue in scanned.issues {
        report.failed.push(FileFailure {
            path: issue.rel,
            error: issue.message,
            transient: issue.transient,
        });
    }
    // Every path must map one-to-one onto a blob name; one that cannot is refused alone.
    let prefix = remote.name_prefix();
    let mut files = Vec::with_capacity(scanned.files.len());
    for file in scanned.files {
        match crate::blobname::check(&file.rel, &prefix) {
            Ok(()) => files.push(file),
            Err(why) => report.failed.push(FileFailure {
                error: crate::blobname::refusal(&file.rel, &why),
                path: file.rel,
                transient: false,
            }),
        }
    }
    report.scanned = files.len() as u64;
    Ok(Scanned { files, index })
}

/// With `--all`: every blob by name, and the blobs with no local file in the report (those
/// `filter` excludes apart: they are there, only not backed up any more).
pub(super) async fn list(
    remote: &dyn Remote,
    opts: &PushOptions,
    filter: &Filter,
    files: &[LocalFile],
    report: &mut PushReport,
) -> Result<Option<HashMap<String, RemoteBlob>>, PushError> {
    if !opts.flags.all {
        return Ok(None);
    }
    let blobs = opts
        .retry
        .run(|| remote.list())
        .await
        .map_err(|error| match error {
            RemoteError::Auth { message } => {
                super::report::refused(remote, message, report.clone())
            }
            RemoteError::Unreachable { message } => PushError::Unreachable {
                remote: remote.describe(),
                detail: message,
                pending: report.scanned,
                report: Box::new(report.clone()),
            },
            error => PushError::List {
                remote: remote.describe(),
                error,
            },
        })?;
    let listing: HashMap<String, RemoteBlob> =
        blobs.into_iter().map(|b| (b.name.clone(), b)).collect();
    let local: HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    let mut only: Vec<String> = listing
        .keys()
        .filter(|name| !local.contains(name.as_str()))
        .cloned()
        .collect();
    only.sort();
    let (excluded, only) = only
        .into_iter()
        .partition(|name| !filter.accepts_path(name));
    report.remote_excluded = excluded;
    report.remote_only = only;
    let mut corrupt: Vec<String> = listing
        .values()
        .filter(|b| b.corrupt)
        .map(|b| b.name.clone())
        .collect();
    corrupt.sort();
    report.corrupt = corrupt;
    Ok(Some(listing))
}

/// What to do: rows to write without uploading, and uploads.
pub(super) struct Plan {
    pub records: Vec<Record>,
    pub jobs: Vec<Job>,
}

/// Decide for every scanned file; files are hashed (below `root_dir`) only when the rules
/// need their content.
pub(super) fn decide_all(
    scanned: Scanned,
    listing: Option<&HashMap<String, RemoteBlob>>,
    rules: &plan::Rules<'_>,
    root_dir: &Beneath,
    opts: &PushOptions,
    report: &mut PushReport,
) -> Plan {
    let mut records = Vec::new();
    let mut jobs = Vec::new();
    for file in scanned.files {
        if super::cancelled(opts) {
            break; // stopping: plan no further, upload nothing new
        }
        let known = scanned.index.get(&file.rel);
        let view = match listing {
            None => RemoteView::NotListed,
            Some(l) => l
                .get(&file.rel)
                .map_or(RemoteView::Missing, RemoteView::Present),
        };
        let decision = plan::decide(&file, known, view, rules, &mut || {
            crate::fsutil::md5_of_reader(root_dir.open_file(&file.rel)?).map(|(md5, _)| md5)
        });
        // `-v`: each file's decision, with why.
        match &decision {
            Ok(d) => {
                tracing::debug!("{}: {d}", crate::redact::printable(&file.rel))
            }
            Err(e) => {
                tracing::debug!(
                    "{}: cannot read it: {e}",
                    crate::redact::printable(&file.rel)
                )
            }
        }
        match decision {
            // Deleted (or replaced by a symlink) since the scan: no longer a candidate.
            Err(e) if crate::fsutil::is_gone(&e) => {
                report.scanned = report.scanned.saturating_sub(1)
            }
            Err(e) => report.failed.push(FileFailure {
                path: file.rel.clone(),
                error: read_error(&e),
                transient: crate::fsutil::is_transient_io(&e),
            }),
            Ok(Decision::Unchanged) => report.unchanged += 1,
            Ok(Decision::Record(entry)) => {
                report.unchanged += 1;
                records.push(Record {
                    rel: file.rel,
                    entry,
                });
            }
            Ok(Decision::Upload {
                reason,
                precondition,
            }) => jobs.push(Job {
                known_md5: known.map(|k| k.md5),
                file,
                action: JobAction::Put {
                    reason,
                    precondition,
                },
            }),
            Ok(Decision::Conflict { .. }) => jobs.push(Job {
                known_md5: known.map(|k| k.md5),
                file,
                action: JobAction::Conflict,
            }),
        }
    }
    Plan { records, jobs }
}

/// A dry run reports the plan instead of carrying it out.
pub(super) fn report_dry_run(jobs: Vec<Job>, opts: &PushOptions, report: &mut PushReport) {
    for job in jobs {
        match job.action {
            JobAction::Conflict => report.conflicts.push(ConflictReport {
                path: job.file.rel.clone(),
                action: super::report::ConflictAction::of(opts.on_conflict, true),
                copy: None,
            }),
            JobAction::Put { reason, .. } => report.would_upload.push(PlannedUpload {
                path: job.file.rel,
                bytes: job.file.size,
                reason,
            }),
        }
    }
}
