//! The state index: one SQLite database per remote, one row per synced file.
//!
//! Written only by the push pipeline (the worker in the daemon). A row means "the remote
//! acknowledged this content for this path": size and mtime for the no-read fast path, the
//! MD5 of what was sent, and the ETag the service returned (the `If-Match` precondition of
//! the next upload). A crash between upload and commit loses nothing: the next pass finds
//! the blob equal by hash and adopts it. The mass-delete guard keeps its memory here too:
//! the remote deletes of the last hour (a table older binaries ignore) and the root's
//! device and inode (in `meta`).

use rusqlite::{Connection, ErrorCode, OpenFlags, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod sync;
pub use sync::{Mode, Origin, SyncInfo};

/// Bump when the table layout changes; older binaries refuse newer files.
const SCHEMA_VERSION: i64 = 2;

/// How long a remote delete counts against the mass-delete guard (seconds).
pub const DELETE_WINDOW_S: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the state index {path} is damaged ({detail}): run `devlogd push --all` to rebuild it from the remote"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the state index {path} has schema version {found}, which this devlogd does not know (it writes {SCHEMA_VERSION}): upgrade devlogd, or run `devlogd push --all` to rebuild the index from the remote"
    )]
    UnknownSchema { path: PathBuf, found: i64 },
    #[error(
        "the state index {path} is read-only ({detail}): make it writable (chmod u+w on it, its -wal and -shm files and its directory, or remount that filesystem read-write); changes are kept pending until then"
    )]
    ReadOnly { path: PathBuf, detail: String },
    #[error("cannot use the state index {path}: {detail}")]
    Other { path: PathBuf, detail: String },
}

impl StateError {
    /// Errors that `push --all` repairs by starting a fresh index.
    pub fn is_rebuildable(&self) -> bool {
        matches!(
            self,
            StateError::Corrupt { .. } | StateError::UnknownSchema { .. }
        )
    }
}

/// What the index knows about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub size: u64,
    pub mtime_ns: i64,
    /// Inode change time: moves on every write and on `touch -r`, which can put the mtime
    /// back (0 in rows from before it was recorded: those are hashed once).
    pub ctime_ns: i64,
    pub md5: [u8; 16],
    /// ETag of the blob at the path: ours when we wrote it, theirs when `conflict`.
    pub etag: Option<String>,
    /// The remote blob belongs to another writer; ours went to a conflict copy (or was
    /// skipped). The next local change must not overwrite theirs.
    pub conflict: bool,
    /// When the row was written (unix seconds); set by [`StateIndex::commit`].
    pub recorded_unix: i64,
}

/// A recorded mtime this close (seconds) to the moment it was recorded cannot be trusted:
/// a same-size write in the same timestamp tick (coarse on HFS+, exFAT, SMB) would look
/// unchanged. Such rows are hashed once more (git's "racily clean" rule).
const RACY_SECONDS: i64 = 2;

impl IndexEntry {
    /// The row can be trusted to describe a file with this stat without reading it: same
    /// size, mtime and ctime, and not recorded so soon after the mtime that a same-tick
    /// write could hide.
    pub fn describes(&self, size: u64, mtime_ns: i64, ctime_ns: i64) -> bool {
        let racy = self.mtime_ns.div_euclid(1_000_000_000) >= self.recorded_unix - RACY_SECONDS;
        self.size == size && self.mtime_ns == mtime_ns && self.ctime_ns == ctime_ns && !racy
    }
}

/// The tables of the delete guards' windows (same shape; older binaries ignore them).
#[derive(Debug, Clone, Copy)]
enum WindowTable {
    /// Remote deletes (the push direction).
    Deletes,
    /// Local deletes made by a pull (the pull direction).
    LocalDeletes,
}

impl WindowTable {
    fn name(self) -> &'static str {
        match self {
            WindowTable::Deletes => "deletes",
            WindowTable::LocalDeletes => "local_deletes",
        }
    }
}

/// One row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub rel: String,
    pub entry: IndexEntry,
}

pub struct StateIndex {
    conn: Connection,
    path: PathBuf,
    writer_id: String,
}

impl StateIndex {
    /// The database file for `remote_identity` inside `state_dir`.
    pub fn path_for(state_dir: &Path, remote_identity: &str) -> PathBuf {
        use md5::{Digest, Md5};
        let digest = Md5::digest(remote_identity.as_bytes());
        let hex = crate::fsutil::hex(&digest[..8]);
        state_dir.join(format!("index-{hex}.sqlite"))
    }

    /// Open (creating if needed) the index for a remote.
    pub fn open(state_dir: &Path, remote_identity: &str) -> Result<Self, StateError> {
        let path = Self::path_for(state_dir, remote_identity);
        crate::fsutil::private_dir_all(state_dir).map_err(|e| StateError::Other {
            path: path.clone(),
            detail: format!("cannot create {}: {e}", state_dir.display()),
        })?;
        // Private even if something (or an older version) made it with a wider mode.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700));
        }
        let writer_id = writer_id(state_dir).map_err(|e| StateError::Other {
            path: state_dir.join(WRITER_ID_FILE),
            detail: e.to_string(),
        })?;
        let mut index = Self::open_at(&path, remote_identity)?;
        index.writer_id = writer_id;
        Ok(index)
    }

    /// This machine's writer id, stored with every blob it writes.
    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    /// Move a damaged index aside (kept for inspection) so a fresh one can be built.
    pub fn move_aside(state_dir: &Path, remote_identity: &str) -> std::io::Result<PathBuf> {
        let path = Self::path_for(state_dir, remote_identity);
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let aside = path.with_extension(format!("sqlite.broken-{stamp}"));
        std::fs::rename(&path, &aside)?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            let _ = std::fs::remove_file(side);
        }
        Ok(aside)
    }

    pub fn open_at(path: &Path, remote_identity: &str) -> Result<Self, StateError> {
        let err = |e: rusqlite::Error| classify(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        // Every file name, size and MD5 of the journal: private, whatever the umask (the
        // WAL and shared-memory files SQLite makes later take this mode too).
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if !(0..=SCHEMA_VERSION).contains(&version) {
            return Err(StateError::UnknownSchema {
                path: path.to_path_buf(),
                found: version,
            });
        }
        // WAL: readers never block the writer; NORMAL is durable against process crashes,
        // and a power cut can only lose rows that the next pass re-derives by hash.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        if version == 0 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS files (
                     path      TEXT PRIMARY KEY,
                     size      INTEGER NOT NULL,
                     mtime_ns  INTEGER NOT NULL,
                     md5       BLOB NOT NULL,
                     etag      TEXT,
                     conflict  INTEGER NOT NULL DEFAULT 0,
                     pushed_at INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(err)?;
        }
        if version < 2 {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE files ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;
                 PRAGMA user_version = 2;
                 COMMIT;",
            )
            .map_err(err)?;
        }
        if version == 0 {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('remote', ?1)",
                params![remote_identity],
            )
            .map_err(err)?;
        }
        // The mass-delete guard's window. A table older binaries ignore, so no schema bump;
        // best effort here (a read-only index fails at its first write, as before), and
        // the queries treat a missing table as no deletes.
        let _ = conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS deletes (path TEXT NOT NULL, at_unix INTEGER NOT NULL);",
        );
        // Two-way sync's additions, the same way (no bump; see `sync.rs`).
        sync::add_columns_and_tables(&conn);
        Ok(StateIndex {
            conn,
            path: path.to_path_buf(),
            writer_id: String::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every row, keyed by relative path.
    pub fn load(&self) -> Result<HashMap<String, IndexEntry>, StateError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, size, mtime_ns, md5, etag, conflict, pushed_at, ctime_ns FROM files",
            )
            .map_err(err)?;
        let rows = stmt.query_map([], row_to_entry).map_err(err)?;
        let mut map = HashMap::new();
        for row in rows {
            let (path, entry) = row.map_err(err)?;
            map.insert(path, entry);
        }
        Ok(map)
    }

    /// The rows for just these paths (daemon batches).
    pub fn load_paths<'a>(
        &self,
        rels: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, IndexEntry>, StateError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, size, mtime_ns, md5, etag, conflict, pushed_at, ctime_ns FROM files WHERE path = ?1",
            )
            .map_err(err)?;
        let mut map = HashMap::new();
        for rel in rels {
            let mut rows = stmt.query_map([rel], row_to_entry).map_err(err)?;
            if let Some(row) = rows.next() {
                let (path, entry) = row.map_err(err)?;
                map.insert(path, entry);
            }
        }
        Ok(map)
    }

    /// Write rows in one transaction.
    pub fn commit(&mut self, records: &[Record]) -> Result<(), StateError> {
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
                    "INSERT OR REPLACE INTO files (path, size, mtime_ns, md5, etag, conflict, pushed_at, ctime_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            for r in records {
                let e = &r.entry;
                stmt.execute(params![
                    r.rel,
                    e.size as i64,
                    e.mtime_ns,
                    &e.md5[..],
                    e.etag,
                    e.conflict,
                    now,
                    e.ctime_ns
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Remove rows (files deleted locally and on the remote) in one transaction.
    pub fn remove(&mut self, paths: &[String]) -> Result<(), StateError> {
        if paths.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM files WHERE path = ?1")
                .map_err(err)?;
            for p in paths {
                stmt.execute(params![p]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Number of rows.
    pub fn count(&self) -> Result<u64, StateError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM files", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| classify(&self.path, e))
    }

    /// Remember remote deletes carried out at `at_unix`, for the mass-delete guard's
    /// window; rows older than [`DELETE_WINDOW_S`] are dropped on the way.
    pub fn record_deletes(&mut self, paths: &[String], at_unix: i64) -> Result<(), StateError> {
        self.record_in_window(WindowTable::Deletes, paths, at_unix)
    }

    /// Remote deletes recorded within the window ending at `now_unix` (and any recorded
    /// "later", by a clock since set back).
    pub fn deletes_since_window(&self, now_unix: i64) -> Result<u64, StateError> {
        self.count_in_window(WindowTable::Deletes, now_unix)
    }

    fn record_in_window(
        &mut self,
        table: WindowTable,
        paths: &[String],
        at_unix: i64,
    ) -> Result<(), StateError> {
        let name = table.name();
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {name} (path TEXT NOT NULL, at_unix INTEGER NOT NULL)"
            ),
            [],
        )
        .map_err(err)?;
        // Rows from a clock that stepped back stay (`at_unix > now`): they still count.
        tx.execute(
            &format!("DELETE FROM {name} WHERE at_unix <= ?1"),
            params![at_unix - DELETE_WINDOW_S],
        )
        .map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT INTO {name} (path, at_unix) VALUES (?1, ?2)"
                ))
                .map_err(err)?;
            for p in paths {
                stmt.execute(params![p, at_unix]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn count_in_window(&self, table: WindowTable, now_unix: i64) -> Result<u64, StateError> {
        match self.conn.query_row(
            &format!("SELECT COUNT(*) FROM {} WHERE at_unix > ?1", table.name()),
            params![now_unix - DELETE_WINDOW_S],
            |r| r.get::<_, i64>(0),
        ) {
            Ok(n) => Ok(n as u64),
            Err(e) if e.to_string().contains("no such table") => Ok(0),
            Err(e) => Err(classify(&self.path, e)),
        }
    }

    /// The journal root's identity (device, inode) recorded by the last pass that let
    /// its deletes through.
    pub fn root_identity(&self) -> Result<Option<(u64, u64)>, StateError> {
        let value: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'root_identity'",
                [],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(|e| classify(&self.path, e))?;
        Ok(value.and_then(|v| {
            let (dev, ino) = v.split_once(':')?;
            Some((dev.parse().ok()?, ino.parse().ok()?))
        }))
    }

    pub fn set_root_identity(&mut self, dev: u64, ino: u64) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('root_identity', ?1)",
                params![format!("{dev}:{ino}")],
            )
            .map(|_| ())
            .map_err(|e| classify(&self.path, e))
    }

    /// Paths whose remote blob belongs to another writer (a conflict not resolved yet).
    pub fn conflict_paths(&self) -> Result<Vec<String>, StateError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare("SELECT path FROM files WHERE conflict != 0 ORDER BY path")
            .map_err(err)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, IndexEntry)> {
    let md5: Vec<u8> = row.get(3)?;
    let md5: [u8; 16] = md5.try_into().unwrap_or([0; 16]);
    Ok((
        row.get(0)?,
        IndexEntry {
            size: row.get::<_, i64>(1)? as u64,
            mtime_ns: row.get(2)?,
            md5,
            etag: row.get(4)?,
            conflict: row.get(5)?,
            recorded_unix: row.get(6)?,
            ctime_ns: row.get(7)?,
        },
    ))
}

/// The file in the state directory that holds a random writer id, used only where the
/// machine has no id of its own.
const WRITER_ID_FILE: &str = "writer-id";

/// This machine's writer id for this state directory: derived from the machine's own id
/// (`/etc/machine-id`, the platform UUID), the host name, the user and the state
/// directory. A home directory copied to another machine therefore writes under another
/// id (its blobs are never taken for ours, nor ours for its), while losing the state
/// directory on this machine keeps the id (our own blobs stay recognisable as ours).
fn writer_id(state_dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let machine = match crate::machine::machine_id() {
        Some(id) => id,
        None => random_writer_id(state_dir)?,
    };
    let state_dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let mut h = Sha256::new();
    for part in [
        "devlogd writer".as_bytes(),
        machine.as_bytes(),
        crate::machine::hostname().as_bytes(),
        rustix::process::getuid().as_raw().to_string().as_bytes(),
        state_dir.as_os_str().as_encoded_bytes(),
    ] {
        h.update(part);
        h.update([0]);
    }
    Ok(crate::fsutil::hex(&h.finalize()[..8]))
}

/// A random id kept in the state directory (machines without a machine id).
fn random_writer_id(state_dir: &Path) -> std::io::Result<String> {
    let path = state_dir.join(WRITER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = crate::fsutil::hex(&rand::random::<[u8; 8]>());
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?
        .write_all(format!("{id}\n").as_bytes())?;
    Ok(id)
}

fn classify(path: &Path, e: rusqlite::Error) -> StateError {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StateError::Corrupt {
            path,
            detail: e.to_string(),
        },
        Some(ErrorCode::ReadOnly) => StateError::ReadOnly {
            path,
            detail: e.to_string(),
        },
        _ => StateError::Other {
            path,
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> IndexEntry {
        IndexEntry {
            size: n as u64,
            mtime_ns: 1_000 + n as i64,
            ctime_ns: 2_000 + n as i64,
            md5: [n; 16],
            etag: Some(format!("\"0x{n}\"")),
            conflict: false,
            recorded_unix: 0,
        }
    }

    #[test]
    fn commit_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = StateIndex::open(dir.path(), "azure:x").unwrap();
        let recs: Vec<_> = (0..3)
            .map(|n| Record {
                rel: format!("d/{n}.md"),
                entry: entry(n),
            })
            .collect();
        idx.commit(&recs).unwrap();
        drop(idx);
        let idx = StateIndex::open(dir.path(), "azure:x").unwrap();
        let map = idx.load().unwrap();
        assert_eq!(map.len(), 3);
        let got = &map["d/2.md"];
        assert!(got.recorded_unix > 1_700_000_000, "commit sets the time");
        assert_eq!(
            IndexEntry {
                recorded_unix: 0,
                ..got.clone()
            },
            entry(2)
        );
        let writer = idx.writer_id().to_string();
        assert_eq!(writer.len(), 16);
        drop(idx);
        let idx = StateIndex::open(dir.path(), "azure:x").unwrap();
        assert_eq!(idx.writer_id(), writer, "stable across opens");
        assert_eq!(idx.count().unwrap(), 3);
        let some = idx.load_paths(["d/1.md", "nope.md"]).unwrap();
        assert_eq!(some.len(), 1);
    }

    #[test]
    fn each_remote_has_its_own_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = StateIndex::open(dir.path(), "azure:a").unwrap();
        a.commit(&[Record {
            rel: "x.md".into(),
            entry: entry(1),
        }])
        .unwrap();
        let b = StateIndex::open(dir.path(), "dir:/b").unwrap();
        assert!(b.load().unwrap().is_empty());
        assert_ne!(a.path(), b.path());
    }

    #[test]
    fn garbage_file_is_reported_corrupt_and_can_be_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateIndex::path_for(dir.path(), "r");
        std::fs::write(&path, b"this is not a database at all, not even close....").unwrap();
        let e = StateIndex::open(dir.path(), "r").err().unwrap();
        assert!(e.is_rebuildable(), "{e}");
        assert!(e.to_string().contains("devlogd push --all"), "{e}");
        StateIndex::move_aside(dir.path(), "r").unwrap();
        assert!(StateIndex::open(dir.path(), "r").is_ok());
    }

    #[test]
    fn deletes_count_within_the_window_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        assert_eq!(idx.deletes_since_window(10_000).unwrap(), 0);
        idx.record_deletes(&["a".into(), "b".into()], 10_000)
            .unwrap();
        idx.record_deletes(&["c".into()], 12_000).unwrap();
        drop(idx);
        let mut idx = StateIndex::open(dir.path(), "r").unwrap();
        assert_eq!(idx.deletes_since_window(12_000).unwrap(), 3);
        assert_eq!(
            idx.deletes_since_window(10_000 + DELETE_WINDOW_S).unwrap(),
            1
        );
        // A clock set back still sees them.
        assert_eq!(idx.deletes_since_window(5_000).unwrap(), 3);
        idx.record_deletes(&["d".into()], 20_000).unwrap();
        assert_eq!(
            idx.deletes_since_window(20_000).unwrap(),
            1,
            "old rows dropped"
        );
        assert_eq!(idx.root_identity().unwrap(), None);
        idx.set_root_identity(7, 42).unwrap();
        drop(idx);
        let idx = StateIndex::open(dir.path(), "r").unwrap();
        assert_eq!(idx.root_identity().unwrap(), Some((7, 42)));
    }

    #[test]
    fn newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateIndex::path_for(dir.path(), "r");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let e = StateIndex::open(dir.path(), "r").err().unwrap();
        assert!(
            matches!(e, StateError::UnknownSchema { found: 99, .. }),
            "{e}"
        );
    }
}
