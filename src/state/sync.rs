//! Two-way sync's additions to the index (design note §1), without a schema bump: columns
//! and tables an older binary ignores. Its `SELECT`s name their columns, and its
//! `INSERT OR REPLACE` only resets these (display data, or derivable from names) to
//! defaults, so a downgrade keeps working. Nothing here decides: the base stays
//! `(etag, md5)` in the columns every version reads.

use super::{StateError, StateIndex, WindowTable, classify};
use rusqlite::{Connection, params};
use std::collections::HashMap;

/// The columns added to `files`, with their declarations.
const COLUMNS: [(&str, &str); 4] = [
    ("writer", "TEXT"),
    ("host", "TEXT"),
    ("origin", "INTEGER NOT NULL DEFAULT 0"),
    ("conflict_of", "TEXT"),
];

/// Add what is missing; idempotent, and best effort like the `deletes` table: a read-only
/// index (or another process adding the same column first) leaves it as it is, and the
/// reads below treat what is missing as defaults.
pub(super) fn add_columns_and_tables(conn: &Connection) {
    let have = existing_columns(conn).unwrap_or_default();
    for (name, decl) in COLUMNS {
        if !have.iter().any(|c| c == name) {
            let _ = conn.execute_batch(&format!("ALTER TABLE files ADD COLUMN {name} {decl};"));
        }
    }
    let _ = conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS local_deletes (path TEXT NOT NULL, at_unix INTEGER NOT NULL);",
    );
}

fn existing_columns(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('files')")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// How the row's version came to be agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// We uploaded it (and every row an older binary or a plain `commit` writes).
    #[default]
    Pushed,
    /// We downloaded it.
    Pulled,
    /// Both sides already held the same bytes (a join or a rebuilt index).
    Adopted,
}

impl Origin {
    fn to_i64(self) -> i64 {
        match self {
            Origin::Pushed => 0,
            Origin::Pulled => 1,
            Origin::Adopted => 2,
        }
    }

    /// Display data: an unknown value (a newer binary's) reads as the default.
    fn from_i64(n: i64) -> Self {
        match n {
            1 => Origin::Pulled,
            2 => Origin::Adopted,
            _ => Origin::Pushed,
        }
    }
}

/// Who wrote the base version, and what the path is; display only, never a decision input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncInfo {
    /// Writer id of the base version (`None`: ours, or not recorded).
    pub writer: Option<String>,
    /// Host of that writer, as it claimed (sanitised before display).
    pub host: Option<String>,
    pub origin: Origin,
    /// When the path is a conflict file: the path it is a conflict file of.
    pub conflict_of: Option<String>,
}

/// The sync mode the last pass ran in: a switch from backup to two-way makes the next pass
/// a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Backup,
    TwoWay,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Backup => "backup",
            Mode::TwoWay => "two-way",
        }
    }
}

const META_GENERATION_ETAG: &str = "generation_etag";
const META_LAST_PULL: &str = "last_pull_unix";
const META_MODE: &str = "mode";

/// An index whose additions could not be made (read-only) reads as having none.
fn is_missing(e: &rusqlite::Error) -> bool {
    let text = e.to_string();
    text.contains("no such column") || text.contains("no such table")
}

impl StateIndex {
    /// Write rows with their sync info in one transaction (the whole row, as `commit`).
    pub fn commit_synced(
        &mut self,
        records: &[(super::Record, SyncInfo)],
    ) -> Result<(), StateError> {
        if records.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO files (path, size, mtime_ns, md5, etag, conflict, pushed_at, ctime_ns, writer, host, origin, conflict_of)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(err)?;
            for (r, info) in records {
                let e = &r.entry;
                stmt.execute(params![
                    r.rel,
                    e.size as i64,
                    e.mtime_ns,
                    &e.md5[..],
                    e.etag,
                    e.conflict,
                    now,
                    e.ctime_ns,
                    info.writer,
                    info.host,
                    info.origin.to_i64(),
                    info.conflict_of
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Every row's sync info, keyed by path.
    pub fn sync_info(&self) -> Result<HashMap<String, SyncInfo>, StateError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = match self
            .conn
            .prepare_cached("SELECT path, writer, host, origin, conflict_of FROM files")
        {
            Ok(stmt) => stmt,
            Err(e) if is_missing(&e) => return Ok(HashMap::new()),
            Err(e) => return Err(err(e)),
        };
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    SyncInfo {
                        writer: r.get(1)?,
                        host: r.get(2)?,
                        origin: Origin::from_i64(r.get::<_, Option<i64>>(3)?.unwrap_or(0)),
                        conflict_of: r.get(4)?,
                    },
                ))
            })
            .map_err(err)?;
        rows.collect::<Result<HashMap<_, _>, _>>().map_err(err)
    }

    /// Conflict files in the index: (path, the path it is a conflict file of), by path.
    pub fn conflict_files(&self) -> Result<Vec<(String, String)>, StateError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = match self.conn.prepare(
            "SELECT path, conflict_of FROM files WHERE conflict_of IS NOT NULL ORDER BY path",
        ) {
            Ok(stmt) => stmt,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// Remember local deletes a pull carried out at `at_unix`, for the pull direction's
    /// mass-delete guard (same window as remote deletes).
    pub fn record_local_deletes(
        &mut self,
        paths: &[String],
        at_unix: i64,
    ) -> Result<(), StateError> {
        self.record_in_window(WindowTable::LocalDeletes, paths, at_unix)
    }

    /// Local deletes within the window ending at `now_unix`.
    pub fn local_deletes_since_window(&self, now_unix: i64) -> Result<u64, StateError> {
        self.count_in_window(WindowTable::LocalDeletes, now_unix)
    }

    /// The generation blob's ETag at the last fully processed poll.
    pub fn generation_etag(&self) -> Result<Option<String>, StateError> {
        self.meta_get(META_GENERATION_ETAG)
    }

    pub fn set_generation_etag(&mut self, etag: &str) -> Result<(), StateError> {
        self.meta_set(META_GENERATION_ETAG, etag)
    }

    /// When the last pull pass finished (unix seconds).
    pub fn last_pull_unix(&self) -> Result<Option<i64>, StateError> {
        Ok(self.meta_get(META_LAST_PULL)?.and_then(|v| v.parse().ok()))
    }

    pub fn set_last_pull_unix(&mut self, at_unix: i64) -> Result<(), StateError> {
        self.meta_set(META_LAST_PULL, &at_unix.to_string())
    }

    /// The mode of the last pass (`None`: never recorded, i.e. backup by an older binary).
    pub fn mode(&self) -> Result<Option<Mode>, StateError> {
        Ok(self.meta_get(META_MODE)?.and_then(|v| {
            [Mode::Backup, Mode::TwoWay]
                .into_iter()
                .find(|m| m.as_str() == v)
        }))
    }

    pub fn set_mode(&mut self, mode: Mode) -> Result<(), StateError> {
        self.meta_set(META_MODE, mode.as_str())
    }

    fn meta_get(&self, key: &str) -> Result<Option<String>, StateError> {
        match self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            }) {
            Ok(v) => Ok(Some(v)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(classify(&self.path, e)),
        }
    }

    fn meta_set(&mut self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| classify(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{IndexEntry, Record};
    use super::*;
    use std::path::Path;

    /// The `files` table as version 2 made it, and an older binary's statements on it
    /// (`StateIndex::load` and `StateIndex::commit` at a349ef0).
    const V2: &str = "BEGIN;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            md5 BLOB NOT NULL, etag TEXT, conflict INTEGER NOT NULL DEFAULT 0,
            pushed_at INTEGER NOT NULL, ctime_ns INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
        INSERT INTO meta VALUES ('remote', 'r');
        INSERT INTO files VALUES ('a.md', 1, 10, x'0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a', '\"e1\"', 0, 1000, 20);
        PRAGMA user_version = 2;
        COMMIT;";
    const OLD_SELECT: &str =
        "SELECT path, size, mtime_ns, md5, etag, conflict, pushed_at, ctime_ns FROM files";
    const OLD_INSERT: &str = "INSERT OR REPLACE INTO files (path, size, mtime_ns, md5, etag, conflict, pushed_at, ctime_ns)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

    fn v2_file(dir: &Path) -> std::path::PathBuf {
        let path = StateIndex::path_for(dir, "r");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(V2).unwrap();
        path
    }

    fn entry(n: u8) -> IndexEntry {
        IndexEntry {
            size: n as u64,
            mtime_ns: 10,
            ctime_ns: 20,
            md5: [n; 16],
            etag: Some(format!("\"e{n}\"")),
            conflict: false,
            recorded_unix: 0,
        }
    }

    fn pulled(n: u8) -> SyncInfo {
        SyncInfo {
            writer: Some(format!("w{n}")),
            host: Some("desk".into()),
            origin: Origin::Pulled,
            conflict_of: None,
        }
    }

    #[test]
    fn a_v2_index_with_rows_gains_the_columns_once_without_a_bump() {
        let dir = tempfile::tempdir().unwrap();
        let path = v2_file(dir.path());
        for _ in 0..3 {
            let idx = StateIndex::open(dir.path(), "r").unwrap();
            let cols = existing_columns(&idx.conn).unwrap();
            for (name, _) in COLUMNS {
                assert_eq!(cols.iter().filter(|c| *c == name).count(), 1, "{name}");
            }
            let a = &idx.load().unwrap()["a.md"];
            assert_eq!(
                (a.size, a.md5, a.etag.as_deref()),
                (1, [0xa; 16], Some("\"e1\""))
            );
            assert_eq!(idx.sync_info().unwrap()["a.md"], SyncInfo::default());
        }
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2, "an older binary still opens it");
    }

    #[test]
    fn an_older_binarys_reads_and_writes_still_work_and_reset_only_display_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = v2_file(dir.path());
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        let rec = |n: u8| Record {
            rel: format!("{n}.md"),
            entry: entry(n),
        };
        idx.commit_synced(&[(rec(1), pulled(1)), (rec(2), pulled(2))])
            .unwrap();
        drop(idx);
        // The older binary: reads every row, rewrites one.
        let conn = Connection::open(&path).unwrap();
        let n = conn
            .prepare(OLD_SELECT)
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .count();
        assert_eq!(n, 3);
        conn.execute(
            OLD_INSERT,
            params!["2.md", 5, 11, &[7u8; 16][..], "\"e7\"", false, 2000, 21],
        )
        .unwrap();
        drop(conn);
        let idx = StateIndex::open(dir.path(), "r").unwrap();
        let info = idx.sync_info().unwrap();
        assert_eq!(info["1.md"], pulled(1), "untouched rows keep theirs");
        assert_eq!(
            info["2.md"],
            SyncInfo::default(),
            "rewritten: NULL, default"
        );
        let rows = idx.load().unwrap();
        assert_eq!(rows["2.md"].md5, [7; 16]);
        assert_eq!(rows["1.md"].md5, [1; 16]);
    }

    #[test]
    fn synced_rows_round_trip_and_a_plain_commit_resets_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        let conflict = SyncInfo {
            origin: Origin::Adopted,
            conflict_of: Some("n.md".into()),
            ..pulled(3)
        };
        let name = "n.sync-conflict-20261122-101500-desk.md";
        let rec = |rel: &str, n| Record {
            rel: rel.into(),
            entry: entry(n),
        };
        idx.commit_synced(&[
            (rec("n.md", 1), pulled(1)),
            (rec(name, 3), conflict.clone()),
        ])
        .unwrap();
        drop(idx);
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        let info = idx.sync_info().unwrap();
        assert_eq!((&info["n.md"], &info[name]), (&pulled(1), &conflict));
        assert_eq!(
            idx.conflict_files().unwrap(),
            vec![(name.to_string(), "n.md".to_string())]
        );
        let got = &idx.load().unwrap()["n.md"];
        assert_eq!(
            IndexEntry {
                recorded_unix: 0,
                ..got.clone()
            },
            entry(1)
        );
        idx.commit(&[rec("n.md", 4)]).unwrap();
        assert_eq!(idx.sync_info().unwrap()["n.md"], SyncInfo::default());
    }

    #[test]
    fn local_deletes_have_their_own_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        assert_eq!(idx.local_deletes_since_window(10_000).unwrap(), 0);
        idx.record_local_deletes(&["a".into(), "b".into()], 10_000)
            .unwrap();
        drop(idx);
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        assert_eq!(idx.local_deletes_since_window(10_000).unwrap(), 2);
        assert_eq!(
            idx.deletes_since_window(10_000).unwrap(),
            0,
            "not remote deletes"
        );
        idx.record_local_deletes(&["c".into()], 10_000 + super::super::DELETE_WINDOW_S)
            .unwrap();
        assert_eq!(
            idx.local_deletes_since_window(10_000 + super::super::DELETE_WINDOW_S)
                .unwrap(),
            1,
            "old rows dropped"
        );
    }

    #[test]
    fn pull_meta_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        assert_eq!(idx.generation_etag().unwrap(), None);
        assert_eq!(idx.last_pull_unix().unwrap(), None);
        assert_eq!(idx.mode().unwrap(), None);
        idx.set_generation_etag("\"g1\"").unwrap();
        idx.set_last_pull_unix(1_800_000_000).unwrap();
        idx.set_mode(Mode::TwoWay).unwrap();
        drop(idx);
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        assert_eq!(idx.generation_etag().unwrap().as_deref(), Some("\"g1\""));
        assert_eq!(idx.last_pull_unix().unwrap(), Some(1_800_000_000));
        assert_eq!(idx.mode().unwrap(), Some(Mode::TwoWay));
        idx.set_mode(Mode::Backup).unwrap();
        assert_eq!(idx.mode().unwrap(), Some(Mode::Backup));
    }

    #[test]
    fn an_index_without_the_additions_reads_them_as_defaults() {
        // As a read-only index that could not be altered.
        let dir = tempfile::tempdir().unwrap();
        let path = v2_file(dir.path());
        let idx = StateIndex {
            conn: Connection::open(&path).unwrap(),
            path,
            writer_id: String::new(),
        };
        assert!(idx.sync_info().unwrap().is_empty());
        assert!(idx.conflict_files().unwrap().is_empty());
        assert_eq!(idx.local_deletes_since_window(0).unwrap(), 0);
        assert_eq!(idx.load().unwrap().len(), 1);
    }
}
