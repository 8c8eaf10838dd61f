//! The three-way decision for one path (design note §1): local file vs the base (the index
//! row) and remote blob vs the base. ETags and MD5s decide, never times across machines.
//!
//! Pure, like `plan::decide`: the file's MD5 is asked for through a closure, at most once,
//! and not at all when the stat fast path (the row still describes the file) can decide.

use crate::remote::{Precondition, RemoteBlob};
use crate::scan::LocalFile;
use crate::state::IndexEntry;
use std::collections::HashSet;
use std::io;

/// The path on this machine.
#[derive(Debug, Clone, Copy)]
pub enum Local<'a> {
    Absent,
    File(&'a LocalFile),
    /// A directory, symlink, fifo…: never replaced, never followed.
    NotRegular,
}

/// The path in a *complete* remote listing (a partial one must never look like deletes).
#[derive(Debug, Clone, Copy)]
pub enum Remote<'a> {
    Absent,
    Blob(&'a RemoteBlob),
    /// No blob of this name, but blobs below it (`a/b` for `a`): a directory there.
    Directory,
    /// A blob of this name *and* blobs below it: no tree can hold both.
    Clash,
}

/// What the path's name says it is; from names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Plain,
    /// A `NAME.sync-conflict-…` (or older `NAME.conflict-…`) file of path `of`.
    ConflictFile {
        of: String,
    },
    /// `events/YYYYMMDD-TAG.jsonl` with this machine's tag: we are its only writer.
    OwnEvents,
    /// Another machine's events log: taken as its writer has it.
    ForeignEvents,
}

/// What the pass knows beyond this path's three states.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// MD5s of every version of this path in the remote history; `None` when history was not
    /// listed this pass (then a decision that needs it says [`Action::NeedHistory`]).
    pub history_md5s: Option<&'a HashSet<[u8; 16]>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Both sides agree; write this row (new stat, or the remote's new ETag for same bytes).
    Record(IndexEntry),
    /// Drop the row: the path is gone on both sides.
    Forget,
    Push(Precondition),
    PushDelete,
    Download,
    DeleteLocal,
    /// Both changed: the remote version goes to a conflict file, the local file stays.
    Conflict,
    /// Put the local bytes over the remote version (`If-Match` its ETag; it goes to history).
    KeepLocal,
    /// Local bytes to a history name, then download the remote version over them.
    KeepTheirs,
    /// List the history and decide again with [`Facts::history_md5s`].
    NeedHistory,
    /// A file on one side, a directory (or link) on the other: reported, nothing moved.
    TypeClash,
    /// The blob's bytes no longer match its MD5 and it is not our base: never downloaded,
    /// reported and left.
    Damaged,
}

/// Decide for one path. `base` is its index row (a backup-mode conflict row is no base);
/// `hash` returns the local file's MD5 and is called at most once.
pub fn decide(
    local: Local<'_>,
    base: Option<&IndexEntry>,
    remote: Remote<'_>,
    kind: &Kind,
    facts: &Facts<'_>,
    hash: &mut dyn FnMut() -> io::Result<[u8; 16]>,
) -> io::Result<Action> {
    let action = plain(local, base, remote, facts, hash)?;
    Ok(by_kind(action, kind))
}

/// Which row of the table the plain decision came from, for the `Kind` overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Both changed (B5) or both present without base and differing (N4).
    BothChanged,
    /// Local unchanged, remote changed (B3).
    RemoteChanged,
    /// Local changed, remote unchanged (B2).
    LocalChanged,
    /// Local deleted, remote unchanged (B6).
    LocalDeleted,
    /// Local unchanged, remote deleted (B7).
    RemoteDeleted,
    /// Local changed, remote deleted (B9) or new here (N1).
    OnlyLocal,
    Other,
}

/// The plain table and the row it used.
fn plain(
    local: Local<'_>,
    base: Option<&IndexEntry>,
    remote: Remote<'_>,
    facts: &Facts<'_>,
    hash: &mut dyn FnMut() -> io::Result<[u8; 16]>,
) -> io::Result<(Action, Row)> {
    use Action::*;
    let base = base.filter(|b| !b.conflict);
    // Asked for at most once, whichever branch asks.
    let mut hashed = None;
    let mut md5 = |file: &LocalFile| -> io::Result<[u8; 16]> {
        if let Some(m) = hashed {
            return Ok(m);
        }
        // The fast path: a row that still describes the file gives its MD5 unread.
        let m = match base {
            Some(b) if b.describes(file.size, file.mtime_ns, file.ctime_ns) => b.md5,
            _ => hash()?,
        };
        hashed = Some(m);
        Ok(m)
    };
    let other = |a| Ok((a, Row::Other));
    let blob = match remote {
        Remote::Clash => return other(TypeClash),
        // The file at this name is gone there (a directory took its place): only a file
        // here clashes; the paths below are decided on their own.
        Remote::Directory => {
            return other(match (local, base) {
                (Local::File(_), _) => TypeClash,
                (_, Some(_)) => Forget,
                (_, None) => Nothing,
            });
        }
        Remote::Blob(r) => Some(r),
        Remote::Absent => None,
    };
    let file = match local {
        Local::NotRegular => {
            return other(match (blob, base) {
                (Some(_), _) => TypeClash,
                (None, Some(_)) => Forget,
                (None, None) => Nothing,
            });
        }
        Local::File(f) => Some(f),
        Local::Absent => None,
    };
    let Some(b) = base else {
        return no_base(file, blob, facts, &mut md5);
    };
    // Remote vs base: same ETag, or the base's bytes under a new ETag (a re-write).
    let remote_same_etag = |r: &RemoteBlob| b.etag.as_deref() == Some(r.etag.as_str());
    let remote_base_bytes = |r: &RemoteBlob| r.md5 == Some(b.md5);
    Ok(match (file, blob) {
        (None, None) => (Forget, Row::Other),
        (None, Some(r)) => {
            if remote_same_etag(r) || remote_base_bytes(r) {
                (PushDelete, Row::LocalDeleted)
            } else if r.corrupt {
                (Damaged, Row::Other)
            } else {
                (Download, Row::Other) // B8: keep the version that exists
            }
        }
        (Some(f), None) => {
            if md5(f)? != b.md5 {
                (Push(Precondition::IfAbsent), Row::OnlyLocal) // B9
            } else {
                // B7: only once history holds the base, else our copy is its last one.
                let action = match facts.history_md5s {
                    None => NeedHistory,
                    Some(h) if h.contains(&b.md5) => DeleteLocal,
                    Some(_) => Push(Precondition::IfAbsent),
                };
                (action, Row::RemoteDeleted)
            }
        }
        (Some(f), Some(r)) => {
            let ours = md5(f)?;
            let local_same = ours == b.md5;
            let fresh = b.describes(f.size, f.mtime_ns, f.ctime_ns);
            let record = |etag: &str| {
                Record(IndexEntry {
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    ctime_ns: f.ctime_ns,
                    md5: ours,
                    etag: Some(etag.to_string()),
                    conflict: false,
                    recorded_unix: 0,
                })
            };
            if r.corrupt && !remote_base_bytes(r) {
                (Damaged, Row::Other)
            } else if r.corrupt {
                // The base's version damaged at rest: the local bytes repair it.
                (Push(Precondition::IfMatch(r.etag.clone())), Row::Other)
            } else if remote_same_etag(r) {
                match (local_same, fresh) {
                    (true, true) => (Nothing, Row::Other), // B1
                    (true, false) => (record(&r.etag), Row::Other),
                    (false, _) => (
                        Push(Precondition::IfMatch(r.etag.clone())),
                        Row::LocalChanged,
                    ), // B2
                }
            } else if r.md5 == Some(ours) {
                (record(&r.etag), Row::Other) // B4: same bytes, adopt the ETag
            } else if remote_base_bytes(r) {
                // The base re-written under a new ETag: only the local side changed.
                (
                    Push(Precondition::IfMatch(r.etag.clone())),
                    Row::LocalChanged,
                )
            } else if local_same {
                (Download, Row::RemoteChanged) // B3
            } else {
                (Conflict, Row::BothChanged) // B5
            }
        }
    })
}

/// Rows N1–N4: no base (first sync, lost index, backup-mode conflict row).
fn no_base(
    file: Option<&LocalFile>,
    blob: Option<&RemoteBlob>,
    facts: &Facts<'_>,
    md5: &mut dyn FnMut(&LocalFile) -> io::Result<[u8; 16]>,
) -> io::Result<(Action, Row)> {
    use Action::*;
    Ok(match (file, blob) {
        (None, None) => (Nothing, Row::Other),
        (Some(_), None) => (Push(Precondition::IfAbsent), Row::OnlyLocal), // N1
        (None, Some(r)) if r.corrupt => (Damaged, Row::Other),
        (None, Some(_)) => (Download, Row::Other), // N2
        (Some(f), Some(r)) => {
            let ours = md5(f)?;
            if r.corrupt && r.md5 == Some(ours) {
                // A damaged copy of our bytes: the local file repairs it (as `plan::decide`).
                (Push(Precondition::IfMatch(r.etag.clone())), Row::Other)
            } else if r.md5 == Some(ours) {
                let row = IndexEntry {
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    ctime_ns: f.ctime_ns,
                    md5: ours,
                    etag: Some(r.etag.clone()),
                    conflict: false,
                    recorded_unix: 0,
                };
                (Record(row), Row::Other) // N3
            } else if r.corrupt {
                (Damaged, Row::Other)
            } else {
                // N4: a local copy equal to any earlier version is stale, not an edit.
                let action = match facts.history_md5s {
                    None => NeedHistory,
                    Some(h) if h.contains(&ours) => Download,
                    Some(_) => Conflict,
                };
                (action, Row::BothChanged)
            }
        }
    })
}

/// The overrides by kind (issue ¶3): a conflict file is never conflicted, an events log is
/// taken as its writer has it.
fn by_kind((action, row): (Action, Row), kind: &Kind) -> Action {
    use Action::*;
    match (kind, row) {
        (Kind::Plain, _) => action,
        (Kind::ConflictFile { .. }, Row::BothChanged) => KeepLocal,
        (Kind::ConflictFile { .. }, _) => action,
        (Kind::OwnEvents, Row::BothChanged | Row::RemoteChanged) => KeepLocal,
        (Kind::OwnEvents, Row::RemoteDeleted) => Push(Precondition::IfAbsent),
        (Kind::OwnEvents, _) => action,
        (Kind::ForeignEvents, Row::BothChanged | Row::LocalChanged) => KeepTheirs,
        (Kind::ForeignEvents, Row::LocalDeleted) => Download,
        (Kind::ForeignEvents, Row::RemoteDeleted) => DeleteLocal,
        // Another machine's log never goes up from here: a copy its writer does not have
        // (deleted there, or never pushed) is left alone, row kept.
        (Kind::ForeignEvents, Row::OnlyLocal) => Nothing,
        (Kind::ForeignEvents, _) => action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Precondition::{IfAbsent, IfMatch};

    const A: [u8; 16] = [0xa; 16];
    const B: [u8; 16] = [0xb; 16];
    const C: [u8; 16] = [0xc; 16];

    fn file() -> LocalFile {
        LocalFile {
            rel: "n.md".into(),
            size: 10,
            mtime_ns: 100,
            ctime_ns: 100,
        }
    }

    /// A base row; `fresh`: its stat still describes `file()` (the fast path may decide).
    fn base(md5: [u8; 16], etag: &str, fresh: bool) -> IndexEntry {
        IndexEntry {
            size: 10,
            mtime_ns: if fresh { 100 } else { 50 },
            ctime_ns: if fresh { 100 } else { 50 },
            md5,
            etag: Some(etag.into()),
            conflict: false,
            recorded_unix: 1_000_000,
        }
    }

    fn blob(md5: [u8; 16], etag: &str) -> RemoteBlob {
        RemoteBlob {
            name: "n.md".into(),
            size: 10,
            md5: Some(md5),
            etag: etag.into(),
            writer: Some("other".into()),
            host: None,
            written_ns: None,
            service_ns: None,
            corrupt: false,
            sealed: None,
        }
    }

    fn corrupt(md5: [u8; 16], etag: &str) -> RemoteBlob {
        RemoteBlob {
            corrupt: true,
            sealed: None,
            ..blob(md5, etag)
        }
    }

    /// The row `Record` writes for `file()` with this content and ETag.
    fn row(md5: [u8; 16], etag: &str) -> IndexEntry {
        IndexEntry {
            size: 10,
            mtime_ns: 100,
            ctime_ns: 100,
            md5,
            etag: Some(etag.into()),
            conflict: false,
            recorded_unix: 0,
        }
    }

    #[derive(Clone, Copy)]
    enum L {
        Absent,
        File([u8; 16]),
        NotRegular,
    }

    #[derive(Clone)]
    #[allow(clippy::large_enum_variant)] // a test table
    enum R {
        Absent,
        Blob(RemoteBlob),
        Directory,
        Clash,
    }

    #[derive(Clone, Copy)]
    enum H {
        NotListed,
        Has([u8; 16]),
        Empty,
    }

    struct Case {
        name: &'static str,
        kind: Kind,
        base: Option<IndexEntry>,
        local: L,
        remote: R,
        history: H,
        want: Action,
        reads: u32,
    }

    fn case(
        name: &'static str,
        base: Option<IndexEntry>,
        local: L,
        remote: R,
        history: H,
        want: Action,
        reads: u32,
    ) -> Case {
        Case {
            name,
            kind: Kind::Plain,
            base,
            local,
            remote,
            history,
            want,
            reads,
        }
    }

    fn run(c: &Case) -> (io::Result<Action>, u32) {
        let f = file();
        let content = match c.local {
            L::File(m) => m,
            _ => [0; 16],
        };
        let local = match c.local {
            L::Absent => Local::Absent,
            L::File(_) => Local::File(&f),
            L::NotRegular => Local::NotRegular,
        };
        let remote = match &c.remote {
            R::Absent => Remote::Absent,
            R::Blob(b) => Remote::Blob(b),
            R::Directory => Remote::Directory,
            R::Clash => Remote::Clash,
        };
        let set: HashSet<[u8; 16]> = match c.history {
            H::Has(m) => [m].into_iter().collect(),
            _ => HashSet::new(),
        };
        let facts = Facts {
            history_md5s: match c.history {
                H::NotListed => None,
                _ => Some(&set),
            },
        };
        let mut reads = 0;
        let got = decide(local, c.base.as_ref(), remote, &c.kind, &facts, &mut || {
            reads += 1;
            Ok(content)
        });
        (got, reads)
    }

    fn check(cases: Vec<Case>) {
        for c in &cases {
            let (got, reads) = run(c);
            let got = got.unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(got, c.want, "{}", c.name);
            assert_eq!(reads, c.reads, "{}: reads", c.name);
        }
    }

    fn e(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn plain_table() {
        use H::{Empty, Has, NotListed as NL};
        let b = |m, t, fresh| Some(base(m, t, fresh));
        let c = case;
        check(vec![
            c(
                "B1 idle: fast path, no read",
                b(A, "e1", true),
                L::File(B),
                R::Blob(blob(A, "e1")),
                NL,
                Nothing,
                0,
            ),
            c(
                "B1 touched: same bytes, new stat recorded",
                b(A, "e1", false),
                L::File(A),
                R::Blob(blob(A, "e1")),
                NL,
                Record(row(A, "e1")),
                1,
            ),
            c(
                "B2 local changed: push over the base",
                b(A, "e1", false),
                L::File(B),
                R::Blob(blob(A, "e1")),
                NL,
                Push(IfMatch(e("e1"))),
                1,
            ),
            c(
                "B2 base re-written under a new ETag: push over that",
                b(A, "e1", false),
                L::File(B),
                R::Blob(blob(A, "e2")),
                NL,
                Push(IfMatch(e("e2"))),
                1,
            ),
            c(
                "B3 remote changed: download, no read",
                b(A, "e1", true),
                L::File(A),
                R::Blob(blob(B, "e2")),
                NL,
                Download,
                0,
            ),
            c(
                "B4 remote has our bytes: adopt its ETag",
                b(A, "e1", false),
                L::File(B),
                R::Blob(blob(B, "e2")),
                NL,
                Record(row(B, "e2")),
                1,
            ),
            c(
                "B4 same bytes re-written, local unchanged",
                b(A, "e1", true),
                L::File(A),
                R::Blob(blob(A, "e2")),
                NL,
                Record(row(A, "e2")),
                0,
            ),
            c(
                "B5 both changed: conflict",
                b(A, "e1", false),
                L::File(B),
                R::Blob(blob(C, "e2")),
                NL,
                Conflict,
                1,
            ),
            c(
                "B6 local deleted: push the delete",
                b(A, "e1", true),
                L::Absent,
                R::Blob(blob(A, "e1")),
                NL,
                PushDelete,
                0,
            ),
            c(
                "B7 remote deleted: ask history first",
                b(A, "e1", true),
                L::File(A),
                R::Absent,
                NL,
                NeedHistory,
                0,
            ),
            c(
                "B7 remote deleted, history holds the base",
                b(A, "e1", true),
                L::File(A),
                R::Absent,
                Has(A),
                DeleteLocal,
                0,
            ),
            c(
                "B7 remote deleted, history lacks the base: push it back",
                b(A, "e1", true),
                L::File(A),
                R::Absent,
                Empty,
                Push(IfAbsent),
                0,
            ),
            c(
                "B8 local deleted, remote changed: keep what exists",
                b(A, "e1", true),
                L::Absent,
                R::Blob(blob(B, "e2")),
                NL,
                Download,
                0,
            ),
            c(
                "B9 local changed, remote deleted: keep and push",
                b(A, "e1", false),
                L::File(B),
                R::Absent,
                NL,
                Push(IfAbsent),
                1,
            ),
            c(
                "B10 both deleted: forget",
                b(A, "e1", true),
                L::Absent,
                R::Absent,
                NL,
                Forget,
                0,
            ),
            c(
                "N1 new here",
                None,
                L::File(A),
                R::Absent,
                NL,
                Push(IfAbsent),
                0,
            ),
            c(
                "N2 new there",
                None,
                L::Absent,
                R::Blob(blob(A, "e1")),
                NL,
                Download,
                0,
            ),
            c(
                "N3 both, same bytes: adopt",
                None,
                L::File(A),
                R::Blob(blob(A, "e1")),
                NL,
                Record(row(A, "e1")),
                1,
            ),
            c(
                "N4 both, differ: ask history",
                None,
                L::File(B),
                R::Blob(blob(A, "e1")),
                NL,
                NeedHistory,
                1,
            ),
            c(
                "N4 stale copy (an earlier version): download",
                None,
                L::File(B),
                R::Blob(blob(A, "e1")),
                Has(B),
                Download,
                1,
            ),
            c(
                "N4 content nobody has seen: conflict",
                None,
                L::File(B),
                R::Blob(blob(A, "e1")),
                Has(C),
                Conflict,
                1,
            ),
            c(
                "backup-mode conflict row is no base (N4, not B3)",
                Some(IndexEntry {
                    conflict: true,
                    ..base(A, "e1", true)
                }),
                L::File(A),
                R::Blob(blob(B, "e1")),
                NL,
                NeedHistory,
                1,
            ),
            c(
                "T1 local directory, remote blob",
                b(A, "e1", true),
                L::NotRegular,
                R::Blob(blob(A, "e1")),
                NL,
                TypeClash,
                0,
            ),
            c(
                "T1 local directory, no base",
                None,
                L::NotRegular,
                R::Blob(blob(A, "e1")),
                NL,
                TypeClash,
                0,
            ),
            c(
                "local directory, remote absent, base: forget the file",
                b(A, "e1", true),
                L::NotRegular,
                R::Absent,
                NL,
                Forget,
                0,
            ),
            c(
                "local directory, nothing else: nothing",
                None,
                L::NotRegular,
                R::Absent,
                NL,
                Nothing,
                0,
            ),
            c(
                "T2 local file, remote directory",
                b(A, "e1", true),
                L::File(A),
                R::Directory,
                NL,
                TypeClash,
                0,
            ),
            c(
                "T2 local file, remote directory, no base",
                None,
                L::File(A),
                R::Directory,
                NL,
                TypeClash,
                0,
            ),
            c(
                "remote directory, nothing here: nothing",
                None,
                L::Absent,
                R::Directory,
                NL,
                Nothing,
                0,
            ),
            c(
                "damaged copy of our bytes, no base: repaired",
                None,
                L::File(A),
                R::Blob(corrupt(A, "e9")),
                NL,
                Push(IfMatch(e("e9"))),
                1,
            ),
            c(
                "damaged other version, no base: never downloaded",
                None,
                L::File(A),
                R::Blob(corrupt(B, "e9")),
                NL,
                Damaged,
                1,
            ),
            c(
                "file turned directory on both sides: forget the file",
                b(A, "e1", true),
                L::NotRegular,
                R::Directory,
                NL,
                Forget,
                0,
            ),
            c(
                "file turned directory there, deleted here: forget",
                b(A, "e1", true),
                L::Absent,
                R::Directory,
                NL,
                Forget,
                0,
            ),
            c(
                "T2 remote holds `a` and `a/b`",
                b(A, "e1", true),
                L::File(A),
                R::Clash,
                NL,
                TypeClash,
                0,
            ),
            c(
                "T2 remote holds `a` and `a/b`, nothing here",
                None,
                L::Absent,
                R::Clash,
                NL,
                TypeClash,
                0,
            ),
            c(
                "damaged copy of the base: the local bytes repair it",
                b(A, "e1", true),
                L::File(A),
                R::Blob(corrupt(A, "e9")),
                NL,
                Push(IfMatch(e("e9"))),
                0,
            ),
            c(
                "damaged other version: never downloaded",
                b(A, "e1", true),
                L::File(A),
                R::Blob(corrupt(B, "e9")),
                NL,
                Damaged,
                0,
            ),
            c(
                "damaged, new there: never downloaded",
                None,
                L::Absent,
                R::Blob(corrupt(A, "e1")),
                NL,
                Damaged,
                0,
            ),
            c(
                "damaged, changed under a local delete: never downloaded",
                b(A, "e1", true),
                L::Absent,
                R::Blob(corrupt(B, "e2")),
                NL,
                Damaged,
                0,
            ),
        ]);
    }

    #[test]
    fn kind_overrides() {
        use H::{Has, NotListed as NL};
        let b = |m, t, fresh| Some(base(m, t, fresh));
        let k = |kind: Kind, c: Case| Case { kind, ..c };
        let cf = || Kind::ConflictFile { of: "n.md".into() };
        let c = case;
        check(vec![
            k(
                cf(),
                c(
                    "conflict file B5: keep local, never conflicted",
                    b(A, "e1", false),
                    L::File(B),
                    R::Blob(blob(C, "e2")),
                    NL,
                    KeepLocal,
                    1,
                ),
            ),
            k(
                cf(),
                c(
                    "conflict file N4: keep local, no history asked",
                    None,
                    L::File(B),
                    R::Blob(blob(A, "e1")),
                    NL,
                    KeepLocal,
                    1,
                ),
            ),
            k(
                cf(),
                c(
                    "conflict file B6: deleting it resolves",
                    b(A, "e1", true),
                    L::Absent,
                    R::Blob(blob(A, "e1")),
                    NL,
                    PushDelete,
                    0,
                ),
            ),
            k(
                cf(),
                c(
                    "conflict file B7: deleted there, deleted here",
                    b(A, "e1", true),
                    L::File(A),
                    R::Absent,
                    Has(A),
                    DeleteLocal,
                    0,
                ),
            ),
            k(
                cf(),
                c(
                    "conflict file B3: updated there, downloaded",
                    b(A, "e1", true),
                    L::File(A),
                    R::Blob(blob(B, "e2")),
                    NL,
                    Download,
                    0,
                ),
            ),
            k(
                Kind::OwnEvents,
                c(
                    "own events B3: ours wins",
                    b(A, "e1", true),
                    L::File(A),
                    R::Blob(blob(B, "e2")),
                    NL,
                    KeepLocal,
                    0,
                ),
            ),
            k(
                Kind::OwnEvents,
                c(
                    "own events B5: ours wins",
                    b(A, "e1", false),
                    L::File(B),
                    R::Blob(blob(C, "e2")),
                    NL,
                    KeepLocal,
                    1,
                ),
            ),
            k(
                Kind::OwnEvents,
                c(
                    "own events N4: ours wins",
                    None,
                    L::File(B),
                    R::Blob(blob(A, "e1")),
                    NL,
                    KeepLocal,
                    1,
                ),
            ),
            k(
                Kind::OwnEvents,
                c(
                    "own events B7: only the writer deletes",
                    b(A, "e1", true),
                    L::File(A),
                    R::Absent,
                    NL,
                    Push(IfAbsent),
                    0,
                ),
            ),
            k(
                Kind::OwnEvents,
                c(
                    "own events B2: push as usual",
                    b(A, "e1", false),
                    L::File(B),
                    R::Blob(blob(A, "e1")),
                    NL,
                    Push(IfMatch(e("e1"))),
                    1,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events B2: theirs wins",
                    b(A, "e1", false),
                    L::File(B),
                    R::Blob(blob(A, "e1")),
                    NL,
                    KeepTheirs,
                    1,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events B5: theirs wins",
                    b(A, "e1", false),
                    L::File(B),
                    R::Blob(blob(C, "e2")),
                    NL,
                    KeepTheirs,
                    1,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events N4: stale copy is no conflict",
                    None,
                    L::File(B),
                    R::Blob(blob(A, "e1")),
                    NL,
                    KeepTheirs,
                    1,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events B6: a local delete is undone",
                    b(A, "e1", true),
                    L::Absent,
                    R::Blob(blob(A, "e1")),
                    NL,
                    Download,
                    0,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events B7: its writer deleted it",
                    b(A, "e1", true),
                    L::File(A),
                    R::Absent,
                    NL,
                    DeleteLocal,
                    0,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events B3: download",
                    b(A, "e1", true),
                    L::File(A),
                    R::Blob(blob(B, "e2")),
                    NL,
                    Download,
                    0,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events B9: never pushed from here",
                    b(A, "e1", false),
                    L::File(B),
                    R::Absent,
                    NL,
                    Nothing,
                    1,
                ),
            ),
            k(
                Kind::ForeignEvents,
                c(
                    "foreign events N1: never pushed from here",
                    None,
                    L::File(A),
                    R::Absent,
                    NL,
                    Nothing,
                    0,
                ),
            ),
        ]);
    }

    #[test]
    fn hash_asked_at_most_once_and_errors_propagate() {
        let c = case(
            "B5",
            Some(base(A, "e1", false)),
            L::File(B),
            R::Blob(blob(C, "e2")),
            H::NotListed,
            Conflict,
            1,
        );
        let f = file();
        let r = blob(C, "e2");
        let mut reads = 0;
        let got = decide(
            Local::File(&f),
            c.base.as_ref(),
            Remote::Blob(&r),
            &Kind::Plain,
            &Facts::default(),
            &mut || {
                reads += 1;
                Err(io::Error::other("unreadable"))
            },
        );
        assert!(got.is_err());
        assert_eq!(reads, 1);
        // Every row of both tables asked at most once (their `reads` column is 0 or 1).
        let (got, reads) = run(&c);
        assert_eq!(got.ok(), Some(Conflict));
        assert!(reads <= 1);
    }
}
