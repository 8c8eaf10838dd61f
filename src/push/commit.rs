//! The commit stage: take upload outcomes as they arrive, count them into the report,
//! tell the front end, and write acknowledged uploads to the index in batches (so an
//! interrupted run keeps what the remote already has).

use super::PushEvent;
use super::report::{ConflictAction, FileFailure, PushReport};
use super::upload::Outcome;
use crate::state::{StateError, StateIndex};
use futures::{Stream, StreamExt};
use std::time::{Duration, Instant};

/// Rows are committed at least this often during a long run (rows, or time since the
/// last commit), so little acknowledged work is held only in memory.
const COMMIT_EVERY: usize = 256;
const COMMIT_INTERVAL: Duration = Duration::from_millis(500);

/// Why uploads stopped early, if they did.
#[derive(Default)]
pub(super) struct Stopped {
    /// The service refused the credentials.
    pub auth: Option<String>,
    /// The service could not be reached.
    pub unreachable: Option<String>,
    /// Jobs never started because of either.
    pub not_started: u64,
}

pub(super) async fn collect(
    mut outcomes: impl Stream<Item = Outcome> + Unpin,
    state: &mut StateIndex,
    report: &mut PushReport,
    progress: &(dyn Fn(PushEvent) + Send + Sync),
) -> Result<Stopped, StateError> {
    let mut records = Vec::new();
    let mut last_commit = Instant::now();
    let mut stopped = Stopped::default();
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Stored {
                record,
                bytes,
                conflict,
                uploaded,
                changed_during_upload,
            } => {
                if uploaded {
                    report.uploaded += 1;
                    report.uploaded_bytes += bytes;
                    if conflict.is_none() {
                        progress(PushEvent::Uploaded {
                            path: record.rel.clone(),
                            bytes,
                        });
                    }
                } else if conflict.is_none() {
                    report.unchanged += 1;
                }
                // Our bytes now stand where a damaged copy was.
                let replaced = conflict
                    .as_ref()
                    .is_none_or(|c| c.action == ConflictAction::Overwritten);
                if uploaded
                    && replaced
                    && let Some(i) = report.corrupt.iter().position(|p| *p == record.rel)
                {
                    report.corrupt.remove(i);
                    report.repaired_corrupt.push(record.rel.clone());
                }
                if let Some(c) = conflict {
                    progress(PushEvent::from(c.clone()));
                    report.conflicts.push(c);
                }
                if changed_during_upload {
                    report.changed_during_upload.push(record.rel.clone());
                }
                records.push(record);
                if records.len() >= COMMIT_EVERY || last_commit.elapsed() >= COMMIT_INTERVAL {
                    state.commit(&records)?;
                    records.clear();
                    last_commit = Instant::now();
                }
            }
            Outcome::Failed {
                path,
                error,
                transient,
            } => {
                progress(PushEvent::Failed {
                    path: path.clone(),
                    error: error.clone(),
                });
                report.failed.push(FileFailure {
                    path,
                    error,
                    transient,
                });
            }
            Outcome::AuthFailed { detail } => {
                stopped.auth.get_or_insert(detail);
            }
            Outcome::Unreachable { path, detail } => {
                report.failed.push(FileFailure {
                    path,
                    error: format!("cannot reach the remote: {detail}"),
                    transient: true,
                });
                stopped.unreachable.get_or_insert(detail);
            }
            Outcome::NotStarted => stopped.not_started += 1,
            Outcome::Gone => report.scanned = report.scanned.saturating_sub(1),
            Outcome::Changed { path } => report.changed_during_upload.push(path),
        }
    }
    state.commit(&records)?;
    Ok(stopped)
}
