//! The delete stage: files deleted (or renamed away) locally leave the current view of
//! the remote, their last content kept in the history area first.
//!
//! Candidates are index rows whose file is gone from disk: every such row in a full pass,
//! and in a daemon batch the rows at or below a named path that is gone. A file that is
//! only excluded by a filter, unreadable, or refused a blob name is never a candidate.
//! The mass-delete guard holds every delete of a pass that would remove more than
//! `max(50, 10 % of the index)` files, or that finds the whole root empty: an unmounted
//! or emptied root must never wipe the backup. Held deletes wait for `--allow-deletes`.

use super::PushOptions;
use super::report::{ConflictAction, ConflictReport, FileFailure, PushReport};
use crate::config::Deletes;
use crate::remote::retry::RetryPolicy;
use crate::remote::{Precondition, Remote, RemoteError};
use crate::state::{IndexEntry, StateError, StateIndex};
use futures::StreamExt;
use std::collections::HashSet;
use std::path::Path;

/// Deletes up to this many files per pass need no `--allow-deletes` …
pub const MASS_DELETE_MIN: u64 = 50;
/// … nor do deletes of up to this share (percent) of the index, if that is more.
pub const MASS_DELETE_PERCENT: u64 = 10;

/// The most deletes one pass may do without `--allow-deletes`, for an index of `rows`.
pub fn mass_delete_threshold(rows: u64) -> u64 {
    MASS_DELETE_MIN.max((rows * MASS_DELETE_PERCENT).div_ceil(100))
}

/// Whether `rel` is gone from below `root` (nothing there, or a parent is now a file).
fn gone(root: &Path, rel: &str) -> bool {
    match std::fs::symlink_metadata(root.join(rel)) {
        Ok(_) => false,
        Err(e) => {
            e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
        }
    }
}

/// What a pass would delete.
pub(super) struct Candidates {
    /// The index rows this pass deletes (a batch: those at or below its gone paths).
    pub now: Vec<(String, IndexEntry)>,
    /// Every index row whose file is gone, what the guard counts: a daemon batch sees only
    /// its own paths, and a large delete arrives in several batches (each path becomes
    /// ready on its own), so the guard looks at the whole index whenever anything is gone.
    pub all_gone: Vec<String>,
}

/// The index rows whose files are gone, sorted by path.
pub(super) fn candidates(
    root: &Path,
    scanned: &super::plan::Scanned,
    state: &StateIndex,
    opts: &PushOptions,
    report: &PushReport,
) -> Result<Candidates, StateError> {
    let none = || Candidates {
        now: Vec::new(),
        all_gone: Vec::new(),
    };
    // A root that is not there (unmounted) deletes nothing.
    if opts.deletes == Deletes::Keep || !root.is_dir() {
        return Ok(none());
    }
    let present: HashSet<&str> = scanned.files.iter().map(|f| f.rel.as_str()).collect();
    let failed: HashSet<&str> = report.failed.iter().map(|f| f.path.as_str()).collect();
    let keep = |rel: &str| present.contains(rel) || failed.contains(rel);
    let mut candidates = match &opts.paths {
        None => {
            let now: Vec<(String, IndexEntry)> = scanned
                .index
                .iter()
                .filter(|(rel, _)| !keep(rel) && gone(root, rel))
                .map(|(r, e)| (r.clone(), e.clone()))
                .collect();
            let all_gone = now.iter().map(|(r, _)| r.clone()).collect();
            Candidates { now, all_gone }
        }
        Some(paths) => {
            let gone_paths: Vec<&String> = paths.iter().filter(|p| gone(root, p)).collect();
            if gone_paths.is_empty() {
                return Ok(none());
            }
            let gone_rows: Vec<(String, IndexEntry)> = state
                .load()?
                .into_iter()
                .filter(|(rel, _)| !keep(rel) && gone(root, rel))
                .collect();
            let all_gone = gone_rows.iter().map(|(r, _)| r.clone()).collect();
            let now = gone_rows
                .into_iter()
                .filter(|(rel, _)| {
                    gone_paths
                        .iter()
                        .any(|p| rel == *p || rel.starts_with(&format!("{p}/")))
                })
                .collect();
            Candidates { now, all_gone }
        }
    };
    candidates.now.sort_by(|a, b| a.0.cmp(&b.0));
    candidates.all_gone.sort();
    Ok(candidates)
}

/// Whether the guard holds these deletes.
pub(super) fn held(count: u64, index_rows: u64, root_empty: bool, opts: &PushOptions) -> bool {
    if opts.allow_deletes || count == 0 {
        return false;
    }
    count > mass_delete_threshold(index_rows) || (root_empty && count > 1)
}

pub(super) struct Deleter<'a> {
    pub remote: &'a dyn Remote,
    pub retry: RetryPolicy,
    pub writer: &'a str,
    pub concurrency: usize,
}

enum Outcome {
    Deleted(String),
    /// Another writer's version is there now: it stays, and we stop tracking the path.
    Theirs(String),
    Failed(String, RemoteError),
}

impl Deleter<'_> {
    async fn delete_one(&self, rel: String, entry: IndexEntry) -> Outcome {
        // A path in conflict holds another writer's blob: never deleted for our delete.
        let etag = match (&entry.etag, entry.conflict) {
            (Some(etag), false) => etag.clone(),
            (_, true) => return Outcome::Theirs(rel),
            (None, false) => return Outcome::Deleted(rel),
        };
        let kept = crate::history::version_name(&rel, &etag, self.writer);
        let preserved = self
            .retry
            .run(|| self.remote.preserve(&rel, &etag, &kept))
            .await;
        let result = match preserved {
            Ok(()) => {
                let precondition = Precondition::IfMatch(etag.clone());
                self.retry
                    .run(|| self.remote.delete(&rel, &precondition))
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Outcome::Deleted(rel),
            Err(RemoteError::Conflict) => match self.retry.run(|| self.remote.head(&rel)).await {
                Ok(None) => Outcome::Deleted(rel), // already gone
                Ok(Some(_)) => Outcome::Theirs(rel),
                Err(e) => Outcome::Failed(rel, e),
            },
            Err(e) => Outcome::Failed(rel, e),
        }
    }

    /// Carry out the deletes; rows of deleted (or no longer ours) paths leave the index.
    pub(super) async fn run(
        &self,
        jobs: Vec<(String, IndexEntry)>,
        state: &mut StateIndex,
        report: &mut PushReport,
    ) -> Result<(), StateError> {
        let mut outcomes = futures::stream::iter(jobs)
            .map(|(rel, entry)| self.delete_one(rel, entry))
            .buffer_unordered(self.concurrency.max(1));
        let mut removed = Vec::new();
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Outcome::Deleted(rel) => {
                    report.deleted.push(rel.clone());
                    removed.push(rel);
                }
                Outcome::Theirs(rel) => {
                    tracing::warn!(
                        path = rel,
                        "deleted locally, but the remote blob is another writer's version now; left it in place"
                    );
                    report.conflicts.push(ConflictReport {
                        path: rel.clone(),
                        action: ConflictAction::Skipped,
                        copy: None,
                    });
                    removed.push(rel);
                }
                Outcome::Failed(rel, e) => report.failed.push(FileFailure {
                    path: rel,
                    transient: e.is_transient(),
                    error: format!("cannot delete from the remote: {e}"),
                }),
            }
        }
        state.remove(&removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_allows_50_files_or_10_percent_whichever_is_larger() {
        assert_eq!(mass_delete_threshold(0), 50);
        assert_eq!(mass_delete_threshold(400), 50);
        assert_eq!(mass_delete_threshold(1000), 100);
        assert_eq!(mass_delete_threshold(1001), 101);
    }

    #[test]
    fn the_guard_holds_big_passes_and_an_emptied_root_unless_allowed() {
        let opts = |allow_deletes| PushOptions {
            all: false,
            force: false,
            dry_run: false,
            checksum: false,
            on_conflict: crate::config::OnConflict::KeepBoth,
            deletes: Deletes::History,
            allow_deletes,
            concurrency: 1,
            paths: None,
            retry: RetryPolicy::default(),
            cancel: None,
        };
        assert!(!held(3, 10, false, &opts(false)));
        assert!(!held(50, 100, false, &opts(false)));
        assert!(held(51, 100, false, &opts(false)));
        assert!(held(3, 3, true, &opts(false)), "an emptied root");
        assert!(!held(1, 1, true, &opts(false)), "the only file");
        assert!(!held(51, 100, false, &opts(true)));
        assert!(!held(0, 100, true, &opts(false)));
    }
}
