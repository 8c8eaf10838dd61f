//! Change detection: one decision per candidate file, from its stat, the state index and
//! (with `--all`) the remote listing.
//!
//! Pure logic: the file's content hash is asked for through a closure, only when the
//! fast path (size and mtime equal to the index) cannot decide, so the decision table is
//! unit-tested without touching a disk or a network.

use crate::remote::{Precondition, RemoteBlob};
use crate::scan::LocalFile;
use crate::state::IndexEntry;

/// What the remote listing says about a path.
#[derive(Debug, Clone, Copy)]
pub enum RemoteView<'a> {
    /// Incremental mode: the remote was not asked.
    NotListed,
    Missing,
    Present(&'a RemoteBlob),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadReason {
    New,
    Changed,
    MissingOnRemote,
    RemoteDiffers,
    Forced,
    /// The blob is our content's version, damaged at rest: the local file puts it right.
    RepairCorrupt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// In sync; nothing to write anywhere.
    Unchanged,
    /// In sync, but the index row needs rewriting (new mtime, or adopting a remote ETag).
    Record(IndexEntry),
    Upload {
        reason: UploadReason,
        precondition: Precondition,
    },
    /// The blob at this path is another writer's and differs from ours.
    Conflict { their_etag: String },
}

impl std::fmt::Display for Decision {
    /// For `-v`: what the push does with the file, and why, in words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Unchanged => f.write_str("unchanged (the index says it is on the remote)"),
            Decision::Record(_) => {
                f.write_str("unchanged (same content; its index row is brought up to date)")
            }
            Decision::Upload { reason, .. } => f.write_str(match reason {
                UploadReason::New => "upload: new",
                UploadReason::Changed => "upload: changed since the last push",
                UploadReason::MissingOnRemote => "upload: missing on the remote",
                UploadReason::RemoteDiffers => "upload: the remote copy differs",
                UploadReason::Forced => "upload: --force",
                UploadReason::RepairCorrupt => "upload: the remote copy is damaged",
            }),
            Decision::Conflict { .. } => {
                f.write_str("conflict: another writer changed the remote copy")
            }
        }
    }
}

/// How to decide, beyond the file's own state.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// `--force`: upload every candidate (still never over another writer's blob).
    pub force: bool,
    /// The `overwrite` policy sends every path still in conflict back to the policy, even
    /// when the local file has not changed since the conflict was recorded.
    pub revisit_conflicts: bool,
    /// Our writer id: a remote blob carrying it is ours, even if the index missed it.
    pub writer: &'a str,
    /// Hash every file, whatever its stat says (`--checksum`; paths the watcher saw
    /// written, whose stat may have been put back).
    pub checksum: bool,
    /// Two-way sync: a blob gone from the remote while the local file is the version the
    /// index knows was deleted by another machine; the pull deletes it here, the push
    /// never uploads it again.
    pub two_way: bool,
}

/// Decide for one file. `hash` returns the file's MD5; it is called at most once.
pub fn decide(
    file: &LocalFile,
    known: Option<&IndexEntry>,
    remote: RemoteView<'_>,
    rules: &Rules<'_>,
    hash: &mut dyn FnMut() -> std::io::Result<[u8; 16]>,
) -> std::io::Result<Decision> {
    let force = rules.force;
    let ours = |r: &RemoteBlob| r.writer.as_deref() == Some(rules.writer);
    if let Some(k) = known.filter(|k| k.conflict && rules.revisit_conflicts) {
        let their_etag = match remote {
            RemoteView::Present(r) => r.etag.clone(),
            _ => k.etag.clone().unwrap_or_default(),
        };
        return Ok(Decision::Conflict { their_etag });
    }
    // Asked for at most once, whichever branch asks.
    let mut hashed = None;
    let mut hash = || -> std::io::Result<[u8; 16]> {
        if let Some(md5) = hashed {
            return Ok(md5);
        }
        let md5 = hash()?;
        hashed = Some(md5);
        Ok(md5)
    };
    // A damaged copy of the version our file holds (its bytes no longer match the MD5 it
    // was written with): not another writer's change, so the local bytes repair it (the
    // damaged copy goes to history first, as before any replace).
    if let RemoteView::Present(r) = remote
        && r.corrupt
        && r.md5 == Some(hash()?)
    {
        return Ok(upload(
            UploadReason::RepairCorrupt,
            Precondition::IfMatch(r.etag.clone()),
        ));
    }
    // The row can be trusted to describe the file (see `IndexEntry::describes`).
    let fresh = known.is_some_and(|k| k.describes(file.size, file.mtime_ns, file.ctime_ns));
    // Whether the stat alone may decide, without reading the file.
    let stat_same = fresh && !rules.checksum;
    let refreshed = |k: &IndexEntry, md5: [u8; 16], etag: Option<String>, conflict: bool| {
        Decision::Record(IndexEntry {
            size: file.size,
            mtime_ns: file.mtime_ns,
            ctime_ns: file.ctime_ns,
            md5,
            etag: etag.or_else(|| k.etag.clone()),
            conflict,
            recorded_unix: 0,
        })
    };
    let if_match_known = |k: &IndexEntry| match &k.etag {
        Some(etag) => Precondition::IfMatch(etag.clone()),
        None => Precondition::IfAbsent,
    };

    if force {
        return Ok(match (known, remote) {
            (Some(k), _) if k.conflict => Decision::Conflict {
                their_etag: k.etag.clone().unwrap_or_default(),
            },
            (_, RemoteView::Present(r)) => {
                let md5 = hash()?;
                if known.is_some_and(|k| k.etag.as_deref() == Some(&r.etag)) || r.md5 == Some(md5) {
                    upload(UploadReason::Forced, Precondition::IfMatch(r.etag.clone()))
                } else {
                    Decision::Conflict {
                        their_etag: r.etag.clone(),
                    }
                }
            }
            (_, RemoteView::Missing) | (None, RemoteView::NotListed) => {
                upload(UploadReason::Forced, Precondition::IfAbsent)
            }
            (Some(k), RemoteView::NotListed) => upload(UploadReason::Forced, if_match_known(k)),
        });
    }

    match (known, remote) {
        // Incremental: the index alone decides.
        (None, RemoteView::NotListed) => Ok(upload(UploadReason::New, Precondition::IfAbsent)),
        (Some(k), RemoteView::NotListed) => {
            if stat_same {
                return Ok(Decision::Unchanged);
            }
            let md5 = hash()?;
            Ok(if md5 == k.md5 {
                if fresh {
                    Decision::Unchanged // only --checksum sent us here
                } else {
                    // Re-record the new stat (or the racy row) so it is not hashed again.
                    refreshed(k, md5, None, k.conflict)
                }
            } else if k.conflict {
                Decision::Conflict {
                    their_etag: k.etag.clone().unwrap_or_default(),
                }
            } else {
                upload(UploadReason::Changed, if_match_known(k))
            })
        }
        // --all: the listing is checked as well.
        (None, RemoteView::Missing) => Ok(upload(UploadReason::New, Precondition::IfAbsent)),
        (Some(k), RemoteView::Missing) if rules.two_way && !k.conflict => {
            let md5 = if stat_same { k.md5 } else { hash()? };
            Ok(if md5 == k.md5 {
                Decision::Unchanged
            } else {
                upload(UploadReason::Changed, Precondition::IfAbsent)
            })
        }
        (Some(_), RemoteView::Missing) => Ok(upload(
            UploadReason::MissingOnRemote,
            Precondition::IfAbsent,
        )),
        (Some(k), RemoteView::Present(r)) if k.etag.as_deref() == Some(r.etag.as_str()) => {
            // The blob is the version the index knows.
            let remote_differs_from_index = r.md5.is_some_and(|m| m != k.md5);
            let md5 = if stat_same { k.md5 } else { hash()? };
            let local_is_indexed = md5 == k.md5;
            Ok(if k.conflict {
                if local_is_indexed {
                    if fresh {
                        Decision::Unchanged
                    } else {
                        refreshed(k, md5, None, true)
                    }
                } else if r.md5 == Some(md5) {
                    refreshed(k, md5, Some(r.etag.clone()), false)
                } else {
                    Decision::Conflict {
                        their_etag: r.etag.clone(),
                    }
                }
            } else if !local_is_indexed {
                upload(UploadReason::Changed, Precondition::IfMatch(r.etag.clone()))
            } else if remote_differs_from_index {
                upload(
                    UploadReason::RemoteDiffers,
                    Precondition::IfMatch(r.etag.clone()),
                )
            } else if fresh {
                Decision::Unchanged
            } else {
                refreshed(k, md5, None, false)
            })
        }
        (_, RemoteView::Present(r)) => {
            // Unknown to the index, or changed since we last recorded it.
            let md5 = hash()?;
            Ok(if r.md5 == Some(md5) {
                Decision::Record(IndexEntry {
                    size: file.size,
                    mtime_ns: file.mtime_ns,
                    ctime_ns: file.ctime_ns,
                    md5,
                    etag: Some(r.etag.clone()),
                    conflict: false,
                    recorded_unix: 0,
                })
            } else if ours(r) {
                // Our own write the index missed (a crash before the commit).
                upload(UploadReason::Changed, Precondition::IfMatch(r.etag.clone()))
            } else {
                Decision::Conflict {
                    their_etag: r.etag.clone(),
                }
            })
        }
    }
}

fn upload(reason: UploadReason, precondition: Precondition) -> Decision {
    Decision::Upload {
        reason,
        precondition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 16] = [0xa; 16];
    const B: [u8; 16] = [0xb; 16];

    fn file() -> LocalFile {
        LocalFile {
            rel: "n.md".into(),
            size: 10,
            mtime_ns: 100,
            ctime_ns: 100,
        }
    }

    /// Recorded long after its mtime (not racy), unless a test says otherwise.
    fn entry(md5: [u8; 16], etag: &str, conflict: bool, same_stat: bool) -> IndexEntry {
        IndexEntry {
            size: 10,
            mtime_ns: if same_stat { 100 } else { 50 },
            ctime_ns: if same_stat { 100 } else { 50 },
            md5,
            etag: Some(etag.into()),
            conflict,
            recorded_unix: 1_000_000,
        }
    }

    fn blob(md5: [u8; 16], etag: &str) -> RemoteBlob {
        RemoteBlob {
            name: "n.md".into(),
            size: 10,
            md5: Some(md5),
            etag: etag.into(),
            writer: Some("someone-else".into()),
            host: None,
            written_ns: None,
            service_ns: None,
            corrupt: false,
            sealed: None,
        }
    }

    const WRITER: &str = "me";

    fn rules(force: bool, revisit_conflicts: bool) -> Rules<'static> {
        Rules {
            force,
            revisit_conflicts,
            writer: WRITER,
            checksum: false,
            two_way: false,
        }
    }

    /// Runs `decide` with a file whose content hashes to `content`; returns the decision
    /// and how many times the file was hashed.
    fn run(
        known: Option<IndexEntry>,
        remote: RemoteView<'_>,
        force: bool,
        content: [u8; 16],
    ) -> (Decision, u32) {
        let mut reads = 0;
        let d = decide(
            &file(),
            known.as_ref(),
            remote,
            &rules(force, false),
            &mut || {
                reads += 1;
                Ok(content)
            },
        )
        .unwrap();
        (d, reads)
    }

    fn up(reason: UploadReason, p: Precondition) -> Decision {
        upload(reason, p)
    }

    #[test]
    fn incremental_table() {
        use Precondition::{IfAbsent, IfMatch};
        use RemoteView::NotListed;
        let m = "\"e1\"".to_string();
        // (name, index row, content hash, expected decision, expected reads)
        type Case = (&'static str, Option<IndexEntry>, [u8; 16], Decision, u32);
        let cases: Vec<Case> = vec![
            (
                "new file, no read",
                None,
                A,
                up(UploadReason::New, IfAbsent),
                0,
            ),
            (
                "fast path, no read",
                Some(entry(A, &m, false, true)),
                B,
                Decision::Unchanged,
                0,
            ),
            (
                "touched, same content",
                Some(entry(A, &m, false, false)),
                A,
                Decision::Record(IndexEntry {
                    mtime_ns: 100,
                    ctime_ns: 100,
                    recorded_unix: 0,
                    ..entry(A, &m, false, false)
                }),
                1,
            ),
            (
                "edited",
                Some(entry(A, &m, false, false)),
                B,
                up(UploadReason::Changed, IfMatch(m.clone())),
                1,
            ),
            (
                "edited after a conflict: never onto theirs",
                Some(entry(A, &m, true, false)),
                B,
                Decision::Conflict {
                    their_etag: m.clone(),
                },
                1,
            ),
        ];
        for (name, known, content, want, want_reads) in cases {
            let (got, reads) = run(known, NotListed, false, content);
            assert_eq!(got, want, "{name}");
            assert_eq!(reads, want_reads, "{name}: reads");
        }
    }

    #[test]
    fn a_damaged_copy_of_our_content_is_repaired_never_a_conflict() {
        use Precondition::IfMatch;
        let ours = "\"ours\"".to_string();
        let damaged = RemoteBlob {
            corrupt: true,
            sealed: None,
            writer: None, // the mark no longer matches the bytes
            ..blob(A, &ours)
        };
        let repair = up(UploadReason::RepairCorrupt, IfMatch(ours.clone()));
        // In sync by the index, by a row that lost the ETag, by no row at all; --force too.
        for (name, known, force) in [
            ("indexed", Some(entry(A, &ours, false, true)), false),
            ("other etag", Some(entry(A, "\"x\"", false, true)), false),
            ("no row", None, false),
            ("forced", Some(entry(A, &ours, false, true)), true),
        ] {
            let (got, reads) = run(known, RemoteView::Present(&damaged), force, A);
            assert_eq!(got, repair, "{name}");
            assert_eq!(reads, 1, "{name}: hashed once");
        }
        // Our file changed since: an ordinary upload over our damaged version.
        let (got, _) = run(
            Some(entry(A, &ours, false, false)),
            RemoteView::Present(&damaged),
            false,
            B,
        );
        assert_eq!(got, up(UploadReason::Changed, IfMatch(ours.clone())));
        // Another writer's version, damaged, that our file does not hold: still theirs.
        let (got, _) = run(None, RemoteView::Present(&damaged), false, B);
        assert_eq!(got, Decision::Conflict { their_etag: ours });
    }

    #[test]
    fn all_mode_table() {
        use Precondition::{IfAbsent, IfMatch};
        let ours = "\"ours\"".to_string();
        let theirs = "\"theirs\"".to_string();
        let b_ours = blob(A, &ours);
        let b_theirs_a = blob(A, &theirs);
        let b_theirs_b = blob(B, &theirs);
        let b_ours_corrupt = blob(B, &ours);
        // (name, index row, remote listing, content hash, expected decision)
        type Case<'a> = (
            &'static str,
            Option<IndexEntry>,
            RemoteView<'a>,
            [u8; 16],
            Decision,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "in sync",
                Some(entry(A, &ours, false, true)),
                RemoteView::Present(&b_ours),
                A,
                Decision::Unchanged,
            ),
            (
                "deleted behind our back",
                Some(entry(A, &ours, false, true)),
                RemoteView::Missing,
                A,
                up(UploadReason::MissingOnRemote, IfAbsent),
            ),
            (
                "remote content differs under our etag",
                Some(entry(A, &ours, false, true)),
                RemoteView::Present(&b_ours_corrupt),
                A,
                up(UploadReason::RemoteDiffers, IfMatch(ours.clone())),
            ),
            (
                "another writer, different content",
                Some(entry(A, &ours, false, true)),
                RemoteView::Present(&b_theirs_b),
                A,
                Decision::Conflict {
                    their_etag: theirs.clone(),
                },
            ),
            (
                "another writer, same content: adopt",
                Some(entry(A, &ours, false, true)),
                RemoteView::Present(&b_theirs_a),
                A,
                Decision::Record(IndexEntry {
                    recorded_unix: 0,
                    ..entry(A, &theirs, false, true)
                }),
            ),
            (
                "empty index, equal blob: adopt (index rebuild)",
                None,
                RemoteView::Present(&b_theirs_a),
                A,
                Decision::Record(IndexEntry {
                    recorded_unix: 0,
                    ..entry(A, &theirs, false, true)
                }),
            ),
            (
                "empty index, different blob: conflict",
                None,
                RemoteView::Present(&b_theirs_b),
                A,
                Decision::Conflict {
                    their_etag: theirs.clone(),
                },
            ),
            (
                "new everywhere",
                None,
                RemoteView::Missing,
                A,
                up(UploadReason::New, IfAbsent),
            ),
            (
                "conflict resolved by making local equal to theirs",
                Some(entry(A, &theirs, true, false)),
                RemoteView::Present(&b_theirs_b),
                B,
                Decision::Record(IndexEntry {
                    mtime_ns: 100,
                    ctime_ns: 100,
                    recorded_unix: 0,
                    ..entry(B, &theirs, false, false)
                }),
            ),
        ];
        for (name, known, remote, content, want) in cases {
            let (got, _) = run(known, remote, false, content);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn force_uploads_everything_but_respects_other_writers() {
        use Precondition::{IfAbsent, IfMatch};
        let ours = "\"ours\"".to_string();
        let (d, _) = run(
            Some(entry(A, &ours, false, true)),
            RemoteView::NotListed,
            true,
            A,
        );
        assert_eq!(d, up(UploadReason::Forced, IfMatch(ours.clone())));
        let (d, _) = run(None, RemoteView::NotListed, true, A);
        assert_eq!(d, up(UploadReason::Forced, IfAbsent));
        let theirs = blob(B, "\"theirs\"");
        let (d, _) = run(None, RemoteView::Present(&theirs), true, A);
        assert_eq!(
            d,
            Decision::Conflict {
                their_etag: "\"theirs\"".into()
            }
        );
    }

    #[test]
    fn overwrite_policy_revisits_recorded_conflicts() {
        let theirs = "\"theirs\"";
        let known = entry(A, theirs, true, true);
        let d = decide(
            &file(),
            Some(&known),
            RemoteView::NotListed,
            &rules(false, true),
            &mut || panic!("no read needed"),
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::Conflict {
                their_etag: theirs.into()
            }
        );
        let (d, reads) = run(Some(known), RemoteView::NotListed, false, A);
        assert_eq!(
            (d, reads),
            (Decision::Unchanged, 0),
            "keep-both: already handled"
        );
    }

    #[test]
    fn our_own_unrecorded_write_is_not_a_conflict() {
        // Uploaded, then the process died before recording it; the file changed since.
        let mine = RemoteBlob {
            writer: Some(WRITER.into()),
            host: None,
            ..blob(B, "\"unrecorded\"")
        };
        let (d, _) = run(
            Some(entry(A, "\"old\"", false, false)),
            RemoteView::Present(&mine),
            false,
            [0xc; 16],
        );
        assert_eq!(
            d,
            up(
                UploadReason::Changed,
                Precondition::IfMatch("\"unrecorded\"".into())
            )
        );
        let (d, _) = run(None, RemoteView::Present(&mine), false, [0xc; 16]);
        assert_eq!(
            d,
            up(
                UploadReason::Changed,
                Precondition::IfMatch("\"unrecorded\"".into())
            )
        );
    }

    #[test]
    fn a_racily_recorded_row_is_hashed_again_then_trusted() {
        // mtime 100 ns after the epoch, recorded at second 1: within the racy window.
        let racy = IndexEntry {
            recorded_unix: 1,
            ..entry(A, "\"e\"", false, true)
        };
        let (d, reads) = run(Some(racy.clone()), RemoteView::NotListed, false, A);
        assert_eq!(reads, 1, "hashed despite equal size and mtime");
        assert_eq!(
            d,
            Decision::Record(IndexEntry {
                recorded_unix: 0,
                ..racy.clone()
            })
        );
        let (d, _) = run(Some(racy), RemoteView::NotListed, false, B);
        assert_eq!(
            d,
            up(UploadReason::Changed, Precondition::IfMatch("\"e\"".into()))
        );
    }

    #[test]
    fn an_mtime_put_back_is_caught_by_the_ctime() {
        // Same size, mtime restored (`touch -r`), but the inode change time moved.
        let known = entry(A, "\"e\"", false, true);
        let touched = LocalFile {
            ctime_ns: 200,
            ..file()
        };
        let mut reads = 0;
        let d = decide(
            &touched,
            Some(&known),
            RemoteView::NotListed,
            &rules(false, false),
            &mut || {
                reads += 1;
                Ok(B)
            },
        )
        .unwrap();
        assert_eq!(reads, 1);
        assert_eq!(
            d,
            up(UploadReason::Changed, Precondition::IfMatch("\"e\"".into()))
        );
    }

    #[test]
    fn checksum_hashes_files_whose_stat_is_unchanged() {
        let known = entry(A, "\"e\"", false, true);
        let checksum = Rules {
            checksum: true,
            ..rules(false, false)
        };
        for (content, expected) in [
            (A, Decision::Unchanged),
            (
                B,
                up(UploadReason::Changed, Precondition::IfMatch("\"e\"".into())),
            ),
        ] {
            let mut reads = 0;
            let d = decide(
                &file(),
                Some(&known),
                RemoteView::NotListed,
                &checksum,
                &mut || {
                    reads += 1;
                    Ok(content)
                },
            )
            .unwrap();
            assert_eq!((d, reads), (expected, 1));
        }
        // With the listing as well: equal content writes nothing.
        let b = blob(A, "\"e\"");
        let d = decide(
            &file(),
            Some(&known),
            RemoteView::Present(&b),
            &checksum,
            &mut || Ok(A),
        )
        .unwrap();
        assert_eq!(d, Decision::Unchanged);
    }

    #[test]
    fn hash_errors_propagate() {
        let known = entry(A, "e", false, false);
        let r = decide(
            &file(),
            Some(&known),
            RemoteView::NotListed,
            &rules(false, false),
            &mut || Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        );
        assert!(r.is_err());
    }
}
