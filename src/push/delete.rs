//! The delete stage: files deleted (or renamed away) locally leave the current view of
//! the remote, their last content kept in the history area first.
//!
//! Candidates are index rows whose file is gone from disk: every such row in a full pass,
//! and in a daemon batch the rows at or below a named path that is gone. A file that is
//! only excluded by a filter, unreadable, or refused a blob name is never a candidate.
//! The mass-delete guard counts over time, not per pass: remote deletes carried out within
//! the last hour (recorded in the state index, so a restart does not reset them) count
//! with the ones a pass would do. It holds them all when together they are more than
//! `max(50, 10 % of the view)`, or more than half of the view (above a handful of files),
//! or would leave nothing of it, or when the root is another directory than the last
//! pass saw (device and inode): an unmounted, emptied or replaced root, or a slow
//! `rsync --delete`, must never wipe the backup. Held deletes wait for `--allow-deletes`.

use super::PushOptions;
use super::report::{ConflictAction, ConflictReport, FileFailure, PushReport};
use crate::config::Deletes;
use crate::remote::retry::RetryPolicy;
use crate::remote::{Precondition, Remote, RemoteError};
use crate::state::{IndexEntry, StateError, StateIndex};
use futures::StreamExt;
use std::collections::HashSet;
use std::path::Path;

/// Deletes of up to this many files within the window (an hour, `state::DELETE_WINDOW_S`)
/// need no `--allow-deletes` …
pub const MASS_DELETE_MIN: u64 = 50;
/// … nor do deletes of up to this share (percent) of the index, if that is more.
pub const MASS_DELETE_PERCENT: u64 = 10;

/// The most deletes within the window without `--allow-deletes`, for a view of `rows`.
pub fn mass_delete_threshold(rows: u64) -> u64 {
    MASS_DELETE_MIN.max((rows * MASS_DELETE_PERCENT).div_ceil(100))
}

/// Whether `rel` is gone from below `root` (nothing there, or a parent is now a file).
fn gone(root: &Path, rel: &str) -> bool {
    match std::fs::symlink_metadata(root.join(rel)) {
        Ok(_) => false,
        Err(e) => {
            e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
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

/// Deletes of more than this many files that remove more than half of the view are held
/// (below it, deleting 3 of 5 files is an everyday tidy-up).
pub const MASS_DELETE_HALF_MIN: u64 = 10;

/// What the guard looks at.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct GuardInput {
    /// Index rows whose file is gone: what this pass would delete, held ones included.
    pub gone: u64,
    /// Index rows now (the current view as this machine knows it).
    pub rows: u64,
    /// Remote deletes already carried out within the window.
    pub recent: u64,
    /// The root is not the directory (device, inode) the last pass saw.
    pub root_replaced: bool,
}

/// Why the guard holds these deletes, or `None` to let them through.
pub(super) fn hold_reason(g: GuardInput, opts: &PushOptions) -> Option<String> {
    if opts.flags.allow_deletes || g.gone == 0 {
        return None;
    }
    let total = g.recent + g.gone;
    // The view before the window's deletes: what they are measured against.
    let view = g.rows + g.recent;
    let limit = mass_delete_threshold(view);
    if g.root_replaced {
        Some(
            "the journal root is another directory than before (an unmounted or replaced volume?)"
                .to_string(),
        )
    } else if g.gone >= g.rows && total > 1 {
        Some(format!(
            "they would leave nothing of the {view} file(s) on the remote"
        ))
    } else if total > limit {
        Some(format!(
            "{total} deletes within an hour, more than the guard allows ({limit})"
        ))
    } else if total > MASS_DELETE_HALF_MIN && total * 2 > view {
        Some(format!(
            "{total} deletes within an hour would remove more than half of the {view} file(s)"
        ))
    } else {
        None
    }
}

/// The root's identity, as the guard compares it (device, inode; `None` if it cannot be
/// read, which never holds anything by itself).
pub(super) fn root_identity(root: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()))
}

pub(super) struct Deleter<'a> {
    pub remote: &'a dyn Remote,
    pub retry: RetryPolicy,
    pub writer: &'a str,
    pub concurrency: usize,
    /// Set at the first permission refusal: no further delete is tried this run (each try
    /// would make one more history copy first).
    pub refused: std::sync::atomic::AtomicBool,
}

/// Why the credentials cannot delete, when the SAS says so itself (`sp` without `d`):
/// then nothing is tried, not even the history copy.
fn sas_cannot_delete(remote: &dyn Remote) -> Option<String> {
    let sas = remote.features().sas?;
    let permissions = sas.permissions.as_deref()?;
    (!permissions.contains('d')).then(|| {
        format!(
            "the SAS lacks delete permission (sp={})",
            crate::redact::printable(permissions)
        )
    })
}

enum Outcome {
    Deleted(String),
    /// The credentials may not delete (or preserve): a verdict, not a retry.
    Refused(String, Option<String>),
    /// Another writer's version is there now: it stays, and we stop tracking the path.
    Theirs(String),
    Failed(String, RemoteError),
}

impl Deleter<'_> {
    async fn delete_one(&self, rel: String, entry: IndexEntry) -> Outcome {
        use std::sync::atomic::Ordering;
        if self.refused.load(Ordering::SeqCst) {
            return Outcome::Refused(rel, None);
        }
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
            Err(RemoteError::Auth { message }) => {
                self.refused.store(true, Ordering::SeqCst);
                Outcome::Refused(
                    rel,
                    Some(format!(
                        "the credentials lack delete permission ({message}); use credentials that may delete, then run devlogd ctl reload"
                    )),
                )
            }
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
        allowed: bool,
        state: &mut StateIndex,
        report: &mut PushReport,
    ) -> Result<(), StateError> {
        if let Some(why) = sas_cannot_delete(self.remote).filter(|_| !jobs.is_empty()) {
            tracing::warn!(files = jobs.len(), "deletes not carried out: {why}");
            report.refused_deletes = jobs.into_iter().map(|(rel, _)| rel).collect();
            report.refused_reason = Some(format!(
                "{why}: make a SAS with delete permission, then run devlogd ctl reload"
            ));
            return Ok(());
        }
        let mut outcomes = futures::stream::iter(jobs)
            .map(|(rel, entry)| self.delete_one(rel, entry))
            .buffer_unordered(self.concurrency.max(1));
        let mut removed = Vec::new();
        let mut deleted = Vec::new();
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Outcome::Deleted(rel) => {
                    // One line per remote delete: what left the current view, and when.
                    tracing::info!(
                        path = %crate::redact::printable(&rel),
                        "deleted from the remote (its last content kept in the history)"
                    );
                    report.deleted.push(rel.clone());
                    deleted.push(rel.clone());
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
                Outcome::Refused(rel, why) => {
                    if let Some(why) = why {
                        tracing::warn!(path = %crate::redact::printable(&rel), "delete refused: {why}");
                        report.refused_reason.get_or_insert(why);
                    }
                    report.refused_deletes.push(rel);
                }
                Outcome::Failed(rel, e) => report.failed.push(FileFailure {
                    path: rel,
                    transient: e.is_transient(),
                    error: format!("cannot delete from the remote: {e}"),
                }),
            }
        }
        state.remove(&removed)?;
        // Deletes the user allowed do not count against the next ones.
        if !allowed {
            state.record_deletes(&deleted, time::OffsetDateTime::now_utc().unix_timestamp())?;
        }
        Ok(())
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

    fn opts(allow_deletes: bool) -> PushOptions {
        PushOptions {
            flags: crate::push::PushFlags {
                allow_deletes,
                ..Default::default()
            },
            on_conflict: crate::config::OnConflict::KeepBoth,
            deletes: Deletes::History,
            two_way: false,
            concurrency: 1,
            paths: None,
            retry: RetryPolicy::default(),
            cancel: None,
            generation_seen: None,
        }
    }

    fn held(gone: u64, rows: u64, recent: u64, root_replaced: bool, allow: bool) -> bool {
        let g = GuardInput {
            gone,
            rows,
            recent,
            root_replaced,
        };
        hold_reason(g, &opts(allow)).is_some()
    }

    #[test]
    fn the_guard_holds_big_passes_and_an_emptied_root_unless_allowed() {
        assert!(!held(3, 10, 0, false, false));
        assert!(!held(3, 5, 0, false, false), "3 of 5: an everyday tidy-up");
        assert!(!held(50, 1000, 0, false, false));
        assert!(held(101, 1000, 0, false, false));
        assert!(held(3, 3, 0, false, false), "an emptied root");
        assert!(!held(1, 1, 0, false, false), "the only file");
        assert!(!held(101, 1000, 0, false, true));
        assert!(!held(0, 100, 0, true, false));
    }

    #[test]
    fn deletes_within_the_window_count_together() {
        // 100 files deleted a few at a time: the recent ones count with each new pass.
        assert!(!held(2, 100, 0, false, false));
        assert!(!held(2, 52, 48, false, false), "50 of 100 in an hour");
        assert!(held(3, 52, 48, false, false), "51 of 100 in an hour");
        // The last files of a journal deleted one by one.
        assert!(held(1, 1, 4, false, false));
    }

    #[test]
    fn more_than_half_or_a_replaced_root_is_held_whatever_the_count() {
        assert!(held(21, 40, 0, false, false), "21 of 40");
        assert!(!held(20, 40, 0, false, false), "exactly half");
        assert!(held(11, 20, 0, false, false));
        assert!(!held(10, 15, 0, false, false), "a handful");
        assert!(held(1, 40, 0, true, false), "another root");
        assert!(!held(1, 40, 0, true, true));
    }
}
