//! The temporary files a download is written to before it is placed
//! (`.devlogd-restore-<random>`, `.devlogd-fetch-<random>`, beside their destination):
//! created 0600 under an unpredictable name, `flock`ed while their writer lives, so that a
//! sweep (the next restore, the daemon's full pass) removes only those a dead process left.

use crate::fsutil::Beneath;
use rustix::fs::{FlockOperation, OFlags, flock};

/// The prefixes of our temporary files.
pub const PREFIXES: [&str; 4] = [
    ".devlogd-restore-",
    ".devlogd-fetch-",
    ".devlogd-pull-",
    ".devlogd-merge-",
];

/// A new file `PREFIX<random>` in `parent`, 0600 and locked, for a download to go to
/// before it is put in place.
pub fn create(parent: &Beneath, prefix: &str) -> std::io::Result<(String, std::fs::File)> {
    loop {
        let name = format!("{prefix}{:016x}", rand::random::<u64>());
        match parent.open_here(&name, OFlags::RDWR | OFlags::CREATE | OFlags::EXCL, 0o600) {
            Ok(fd) => {
                let file = std::fs::File::from(fd);
                // Held until the file is closed: it tells a live writer's file from a dead
                // one's. A sweep may take the file between its creation and this lock (it
                // then removes it): try another name.
                if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err()
                    || !still_named(parent, &name, &file)
                {
                    continue;
                }
                return Ok((name, file));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether `name` in `dir` is still `file` (a sweep did not remove it before it was locked).
fn still_named(dir: &Beneath, name: &str, file: &std::fs::File) -> bool {
    use rustix::fs::{AtFlags, fstat, statat};
    match (
        statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW),
        fstat(file),
    ) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// A temporary file's name, unlinked on drop unless it was put in place.
pub struct TempName<'a> {
    pub dir: &'a Beneath,
    pub name: &'a str,
    pub placed: bool,
}

impl Drop for TempName<'_> {
    fn drop(&mut self) {
        if !self.placed {
            let _ = self.dir.unlink_here(self.name);
        }
    }
}

/// Remove the temporary files no live process holds, in `dir` and every directory below
/// it a restore could write to (hidden ones are never written). Returns how many.
pub fn sweep(dir: &Beneath) -> u64 {
    let mut removed = 0;
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let Ok(here) = dir.open_dir(&rel, false) else {
            continue;
        };
        let Ok(names) = here.names() else { continue };
        for name in names {
            if PREFIXES.iter().any(|p| name.starts_with(p)) {
                removed += u64::from(remove_if_stale(&here, &name));
            } else if !name.starts_with('.') {
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                // Files fail to open as directories and are skipped; no symlink is followed.
                if dir.open_dir(&child, false).is_ok() {
                    stack.push(child);
                }
            }
        }
    }
    removed
}

/// [`sweep`] below the directory `root` (the daemon's full pass), logging what it removed.
pub fn sweep_root(root: &std::path::Path) -> u64 {
    let Ok(dir) = Beneath::open(root) else {
        return 0;
    };
    let removed = sweep(&dir);
    if removed > 0 {
        tracing::info!(
            removed,
            "removed temporary files a stopped restore or fetch left"
        );
    }
    removed
}

/// Unlink `name` if it is a regular file nobody holds locked.
fn remove_if_stale(dir: &Beneath, name: &str) -> bool {
    let Ok(fd) = dir.open_here(name, OFlags::RDONLY | OFlags::NONBLOCK, 0) else {
        return false;
    };
    let file = std::fs::File::from(fd);
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return false; // a live writer holds it
    }
    dir.unlink_here(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_only_what_no_live_writer_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Beneath::open(tmp.path()).unwrap();
        let sub = root.open_dir("a/b", true).unwrap();
        let (live, _held) = create(&sub, ".devlogd-restore-").unwrap();
        let (dead, file) = create(&sub, ".devlogd-fetch-").unwrap();
        drop(file);
        std::fs::write(tmp.path().join("a/b/notes.md"), "mine").unwrap();
        std::fs::write(tmp.path().join(".devlogd-restore-crashed"), "x").unwrap();
        std::fs::create_dir(tmp.path().join(".git")).unwrap();
        std::fs::write(tmp.path().join(".git/.devlogd-fetch-x"), "not ours to walk").unwrap();
        assert_eq!(sweep(&root), 2);
        assert!(tmp.path().join("a/b").join(&live).exists());
        assert!(!tmp.path().join("a/b").join(&dead).exists());
        assert!(tmp.path().join("a/b/notes.md").exists());
        assert!(!tmp.path().join(".devlogd-restore-crashed").exists());
        assert!(tmp.path().join(".git/.devlogd-fetch-x").exists());
    }
}
