//! The journal itself: entries under `entries/`, the activity log under `events/`. Used by
//! the `devlog` command; the daemon only ever reads these files.
//!
//! Every write is atomic (a hidden temporary file in the same directory, fsynced, then
//! renamed over the target), so the daemon never uploads half an entry, and the
//! temporaries are hidden files, which the sync rules skip.

pub mod editor;
pub mod entry;
pub mod events;
pub mod render;

use entry::{Entry, FrontMatter};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no entry with id `{0}` (`devlog list` shows the ids)")]
    UnknownId(String),
    #[error("the id `{0}` is taken: choose another with --id, or leave --id out")]
    IdTaken(String),
    #[error("{0}")]
    InvalidId(String),
    #[error("{0}")]
    Editor(String),
    #[error("the entry is empty: nothing was written")]
    Empty,
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a readable entry: {problem}")]
    BadEntry { path: PathBuf, problem: String },
    #[error(
        "the edit was not saved ({problem}); the entry is unchanged and your text is kept in {kept}"
    )]
    BadEdit { problem: String, kept: PathBuf },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io { what, path, source }
}

/// Entries with their paths, and the files that could not be read.
pub type Listing = (Vec<(PathBuf, Entry)>, Vec<JournalError>);

/// What `devlog edit` did.
#[derive(Debug, PartialEq, Eq)]
pub enum EditOutcome {
    Unchanged,
    Updated(Entry),
}

pub struct Journal {
    root: PathBuf,
}

impl Journal {
    pub fn new(root: &Path) -> Self {
        Journal {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create an entry; `id` is validated and must be free, or one is generated.
    pub fn create(
        &self,
        body: &str,
        id: Option<&str>,
        tags: Vec<String>,
    ) -> Result<(PathBuf, Entry), JournalError> {
        if body.trim().is_empty() {
            return Err(JournalError::Empty);
        }
        let existing = self.ids()?;
        let id = match id {
            Some(id) => {
                entry::validate_id(id).map_err(|e| JournalError::InvalidId(e.to_string()))?;
                if existing.iter().any(|e| e == id) {
                    return Err(JournalError::IdTaken(id.to_string()));
                }
                id.to_string()
            }
            None => loop {
                let candidate = entry::generate_id();
                if !existing.contains(&candidate) {
                    break candidate;
                }
            },
        };
        let now = entry::created_now();
        let entry = Entry {
            front: FrontMatter {
                id,
                created: now,
                updated: now,
                tags,
            },
            body: format!("{}\n", body.trim_end()),
        };
        let path = self.root.join(entry.rel_path());
        write_atomic(&path, entry.render().as_bytes())?;
        self.record("new", Some(&entry.front.id))?;
        Ok((path, entry))
    }

    /// Every entry file, newest first. Files that do not parse are reported, not fatal.
    pub fn all(&self) -> Result<Listing, JournalError> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for path in self.entry_files()? {
            match read_entry(&path) {
                Ok(e) => entries.push((path, e)),
                Err(e) => problems.push(e),
            }
        }
        // Newest first (new entries' `created` has milliseconds); entries made within one
        // second by an older devlog, by when their files were written.
        let written = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        entries.sort_by_cached_key(|(p, e)| std::cmp::Reverse((e.front.created, written(p))));
        Ok((entries, problems))
    }

    /// The entry with this id: by its file name, else (a file renamed, by hand or by
    /// another machine) by the id in its front matter. Never a conflict file.
    pub fn find(&self, id: &str) -> Result<(PathBuf, Entry), JournalError> {
        entry::validate_id(id).map_err(|_| JournalError::UnknownId(id.to_string()))?;
        let files: Vec<PathBuf> = self
            .entry_files()?
            .into_iter()
            .filter(|p| other_version_label(p).is_none())
            .collect();
        let named = files.iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(entry::id_from_file_name)
                == Some(id)
        });
        if let Some(path) = named {
            let e = read_entry(path)?;
            return Ok((path.clone(), e));
        }
        let mut by_front = self.markdown_files()?;
        by_front.retain(|p| other_version_label(p).is_none());
        by_front.sort();
        by_front
            .into_iter()
            .find_map(|path| {
                let e = read_entry(&path).ok()?;
                (e.front.id == id).then_some((path, e))
            })
            .ok_or_else(|| JournalError::UnknownId(id.to_string()))
    }

    /// Open the entry in the editor; write it back (with a new `updated`) only if the text
    /// changed and the editor succeeded. Whatever goes wrong after the editor exits, the
    /// edited text is kept in the scratch file and the message says where.
    pub fn edit(&self, id: &str) -> Result<EditOutcome, JournalError> {
        let (path, original) = self.find(id)?;
        let before = std::fs::read_to_string(&path).map_err(io("read", &path))?;
        editor::editor_command().map_err(|e| JournalError::Editor(e.to_string()))?;
        let scratch = scratch_file(&before)?;
        if let Err(e) = editor::edit(&scratch) {
            let _ = std::fs::remove_file(&scratch);
            return Err(JournalError::Editor(format!("{e}; the entry is unchanged")));
        }
        let kept = |problem: String| JournalError::BadEdit {
            problem,
            kept: scratch.clone(),
        };
        let after = std::fs::read_to_string(&scratch).map_err(|e| kept(e.to_string()))?;
        let mut edited = Entry::parse(&after).map_err(|e| kept(e.to_string()))?;
        let changed =
            after != before && !(edited.front == original.front && edited.body == original.body);
        if changed {
            // Someone (another editor, a sync tool) changed the file meanwhile: do not
            // overwrite their version with ours.
            let now = std::fs::read_to_string(&path).map_err(|e| kept(e.to_string()))?;
            if now != before {
                return Err(kept(format!(
                    "{} changed on disk while you were editing",
                    path.display()
                )));
            }
            // The id and creation time name the file: they are not the editor's to change.
            edited.front.id = original.front.id.clone();
            edited.front.created = original.front.created;
            edited.front.updated = entry::now();
            write_atomic(&path, edited.render().as_bytes()).map_err(|e| kept(e.to_string()))?;
        }
        let _ = std::fs::remove_file(&scratch);
        if changed {
            // Only changes are logged: an edit that changed nothing is a read.
            self.record("edit", Some(id))?;
        }
        Ok(if changed {
            EditOutcome::Updated(edited)
        } else {
            EditOutcome::Unchanged
        })
    }

    /// Append an activity line.
    pub fn record(&self, action: &str, id: Option<&str>) -> Result<(), JournalError> {
        events::append(&self.root, action, id, entry::now())
            .map_err(io("append to the events log in", &self.root))
    }

    fn ids(&self) -> Result<Vec<String>, JournalError> {
        Ok(self
            .entry_files()?
            .iter()
            .filter_map(|p| {
                p.file_name()?
                    .to_str()
                    .and_then(entry::id_from_file_name)
                    .map(String::from)
            })
            .collect())
    }

    fn entry_files(&self) -> Result<Vec<PathBuf>, JournalError> {
        let mut files = self.markdown_files()?;
        files.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(entry::id_from_file_name)
                .is_some()
        });
        Ok(files)
    }

    /// Every `.md` file below `entries/` (hidden names skipped).
    fn markdown_files(&self) -> Result<Vec<PathBuf>, JournalError> {
        let dir = self.root.join("entries");
        let mut files = Vec::new();
        if !dir.exists() {
            return Ok(files);
        }
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for item in std::fs::read_dir(&d).map_err(io("read", &d))? {
                let item = item.map_err(io("read", &d))?;
                let path = item.path();
                let name = item.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                let kind = item.file_type().map_err(io("read", &path))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() && name.ends_with(".md") {
                    files.push(path);
                }
            }
        }
        Ok(files)
    }
}

/// The host whose version a conflict file holds (two-way sync's
/// `NAME.sync-conflict-…-HOST.md`, or backup mode's `NAME.conflict-HOST-…`); `None` for an
/// entry's own file.
/// A copy `restore --overwrite` kept of a local file it replaced
/// (`NAME.local-YYYYMMDDTHHMMSSZ-RANDOM.md`): another version of an entry, not an entry.
pub fn is_kept_local_copy(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.match_indices(".local-").any(|(i, m)| {
        let rest = &name.as_bytes()[i + m.len()..];
        rest.len() > 17
            && rest[..8].iter().all(u8::is_ascii_digit)
            && rest[8] == b'T'
            && rest[9..15].iter().all(u8::is_ascii_digit)
            && rest[15] == b'Z'
            && rest[16] == b'-'
    })
}

/// What a file below `entries/` is besides an entry: a conflict file (the host whose
/// version it holds) or a copy restore kept; `None` for an entry's own file.
pub fn other_version_label(path: &Path) -> Option<String> {
    match conflict_file_host(path) {
        Some(host) => Some(format!("conflict, {host}")),
        None => is_kept_local_copy(path).then(|| "local copy kept by restore".to_string()),
    }
}

pub fn conflict_file_host(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    crate::names::parse_sync_conflict(name)
        .map(|c| c.host)
        .or_else(|| crate::names::parse_copy_name(name).map(|(_, host, _)| host))
}

fn read_entry(path: &Path) -> Result<Entry, JournalError> {
    let text = std::fs::read_to_string(path).map_err(io("read", path))?;
    Entry::parse(&text).map_err(|problem| JournalError::BadEntry {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    })
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A private scratch file outside the journal, for the editor.
pub fn scratch_file(text: &str) -> Result<PathBuf, JournalError> {
    let path = std::env::temp_dir().join(format!(
        "devlog-{}-{}.md",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    // Private: entries are personal, and the temporary directory is shared.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io("create", &path))?;
    f.write_all(text.as_bytes()).map_err(io("write", &path))?;
    Ok(path)
}

/// Write `bytes` to `path` atomically: hidden temporary in the same directory, fsync,
/// rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::fsutil::private_dir_all(dir).map_err(io("create", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        JournalError::Io {
            what: "write",
            path: path.to_path_buf(),
            source: e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_find_and_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let (path, a) = j.create("first", Some("alpha"), vec!["x".into()]).unwrap();
        assert!(path.ends_with(a.rel_path()));
        let (_, b) = j.create("second", None, vec![]).unwrap();
        assert_eq!(j.find("alpha").unwrap().1, a);
        assert!(matches!(
            j.create("again", Some("alpha"), vec![]),
            Err(JournalError::IdTaken(_))
        ));
        assert!(matches!(
            j.create("x", Some("../up"), vec![]),
            Err(JournalError::InvalidId(_))
        ));
        assert!(matches!(
            j.create("  \n", None, vec![]),
            Err(JournalError::Empty)
        ));
        assert!(matches!(j.find("nope"), Err(JournalError::UnknownId(_))));
        let (all, problems) = j.all().unwrap();
        assert!(problems.is_empty());
        let ids: Vec<_> = all.iter().map(|(_, e)| e.front.id.clone()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&b.front.id));
        // No temporaries left behind.
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
