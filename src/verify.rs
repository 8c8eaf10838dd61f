//! `devlogd verify`: compare every local candidate with the remote by MD5, like
//! `rclone check`. Reads everything, writes nothing.

use crate::filter::Filter;
use crate::fsutil::{Beneath, md5_of_reader};
use crate::push::FileFailure;
use crate::remote::{Remote, RemoteError};
use crate::scan;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub in_sync: u64,
    /// Present on both sides with different content.
    pub differs: Vec<String>,
    /// The remote's copy is damaged: its bytes no longer match the MD5 written with them
    /// (not another writer's change).
    pub corrupt: Vec<String>,
    pub missing_on_remote: Vec<String>,
    /// Blobs with no local file (conflict copies, files deleted locally). Informational.
    pub only_on_remote: Vec<String>,
    /// Blobs the include/exclude rules or `.devlogignore` now exclude here: the remote keeps
    /// their last version. Informational.
    pub excluded: Vec<String>,
    /// Local files that could not be read.
    pub unreadable: Vec<FileFailure>,
    /// Paths that differ because another writer changed them too (the index flags them,
    /// or a conflict copy of them is on the remote): `push --all` does not resolve these.
    pub conflicts: Vec<String>,
}

impl VerifyReport {
    /// True when every local file is on the remote with the same content.
    pub fn all_match(&self) -> bool {
        self.differs.is_empty()
            && self.corrupt.is_empty()
            && self.missing_on_remote.is_empty()
            && self.unreadable.is_empty()
            && self.conflicts.is_empty()
    }

    /// Move the differing paths that are conflicts (`flagged` by the index, or with a
    /// conflict copy on the remote) from `differs` to `conflicts`.
    pub fn separate_conflicts(&mut self, flagged: &[String]) {
        let copied: std::collections::BTreeSet<String> = self
            .only_on_remote
            .iter()
            .filter_map(|n| crate::conflicts::parse_copy_name(n).map(|(path, _, _)| path))
            .collect();
        let (conflicts, differs) = std::mem::take(&mut self.differs)
            .into_iter()
            .partition(|p| copied.contains(p) || flagged.contains(p));
        self.differs = differs;
        self.conflicts = conflicts;
    }
}

pub async fn verify(
    root: &Path,
    filter: &Filter,
    remote: &dyn Remote,
) -> Result<VerifyReport, RemoteError> {
    let listing = remote.list().await?;
    let prefix = remote.name_prefix();
    let mut remote_by_name: HashMap<String, _> =
        listing.into_iter().map(|b| (b.name.clone(), b)).collect();
    let root = root.to_path_buf();
    let walk_filter = filter.clone();
    let local = tokio::task::spawn_blocking(move || {
        let scanned = scan::scan_root(&root, &walk_filter);
        let dir = Beneath::open(&root);
        let hashed: Vec<_> = scanned
            .files
            .into_iter()
            .map(|f| {
                let md5 = match &dir {
                    Ok(dir) => dir
                        .open_file(&f.rel)
                        .and_then(md5_of_reader)
                        .map(|(m, _)| m),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
                (f.rel, md5)
            })
            .collect();
        (hashed, scanned.issues)
    })
    .await
    .map_err(|e| RemoteError::Permanent {
        message: format!("verify task failed: {e}"),
    })?;
    let (hashed, issues) = local;
    let mut report = VerifyReport::default();
    for issue in issues {
        report.unreadable.push(FileFailure {
            path: issue.rel,
            error: issue.message,
            transient: false,
        });
    }
    for (rel, md5) in hashed {
        if let Err(why) = crate::blobname::check(&rel, &prefix) {
            report.unreadable.push(FileFailure {
                error: crate::blobname::refusal(&rel, &why),
                path: rel,
                transient: false,
            });
            continue;
        }
        let md5 = match md5 {
            Ok(m) => m,
            Err(e) => {
                remote_by_name.remove(&rel);
                report.unreadable.push(FileFailure {
                    path: rel,
                    error: format!("cannot read: {e}"),
                    transient: false,
                });
                continue;
            }
        };
        match remote_by_name.remove(&rel) {
            None => report.missing_on_remote.push(rel),
            Some(blob) if blob.corrupt => report.corrupt.push(rel),
            Some(blob) if blob.md5 == Some(md5) => report.in_sync += 1,
            Some(_) => report.differs.push(rel),
        }
    }
    let (excluded, only): (Vec<String>, Vec<String>) = remote_by_name
        .into_keys()
        .partition(|name| !filter.accepts_path(name));
    report.only_on_remote = only;
    report.only_on_remote.sort();
    report.excluded = excluded;
    report.excluded.sort();
    report.differs.sort();
    report.corrupt.sort();
    report.missing_on_remote.sort();
    Ok(report)
}
