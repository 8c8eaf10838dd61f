//! The single-instance lock: an `flock` on a file in the state directory, holding the
//! holder's pid (and `daemon` when the holder is `devlogd run`). The kernel drops it when
//! the process dies, so a crash leaves nothing stale.
//!
//! A one-shot `devlogd push` takes the same lock for the length of its push. A daemon
//! (re)started meanwhile waits for it ([`try_acquire`] in a loop, see `daemon::run`)
//! instead of exiting: the service manager would not restart it.

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Who takes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `devlogd run`.
    Daemon,
    /// A one-shot command (`devlogd push`).
    OneShot,
}

pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

/// Who holds the lock, as far as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<String>,
    /// The holder wrote that it is a daemon.
    pub daemon: bool,
    pub path: PathBuf,
}

impl Holder {
    /// "devlogd is already running, pid N (lock PATH)".
    pub fn already_running(&self) -> String {
        match &self.pid {
            Some(pid) => format!(
                "devlogd is already running, pid {pid} (lock {})",
                self.path.display()
            ),
            None => format!("devlogd is already running (lock {})", self.path.display()),
        }
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", .0.already_running())]
    Held(Holder),
    #[error("cannot {doing} {}: {source}", .path.display())]
    Unusable {
        doing: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn unusable(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Unusable {
        doing,
        path,
        source,
    }
}

/// Take the lock or say who holds it (a one-shot command's entry point).
pub fn acquire(state_dir: &Path) -> Result<InstanceLock, LockError> {
    try_acquire(state_dir, Role::OneShot)?.map_err(LockError::Held)
}

/// One attempt: the lock, or who holds it; `Err` when the file cannot be used at all.
pub fn try_acquire(
    state_dir: &Path,
    role: Role,
) -> Result<Result<InstanceLock, Holder>, LockError> {
    std::fs::create_dir_all(state_dir).map_err(unusable("create", state_dir))?;
    let path = state_dir.join("devlogd.lock");
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    let mut file = match opened {
        Ok(file) => file,
        // A read-only state directory: the lock still works on a read-only descriptor
        // (without the pid); the worker then says what is read-only.
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                || Errno::from_io_error(&e) == Some(Errno::ROFS) =>
        {
            File::open(&path).map_err(|_| unusable("open", &path)(e))?
        }
        Err(e) => return Err(unusable("open", &path)(e)),
    };
    if let Err(errno) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
        if errno != Errno::WOULDBLOCK {
            return Err(unusable("lock", &path)(errno.into()));
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Ok(Err(parse_holder(&text, path)));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let role = match role {
        Role::Daemon => " daemon",
        Role::OneShot => "",
    };
    let _ = writeln!(file, "{}{role}", std::process::id());
    Ok(Ok(InstanceLock { _file: file, path }))
}

fn parse_holder(text: &str, path: PathBuf) -> Holder {
    let mut words = text.split_whitespace();
    let pid = words.next().map(str::to_string);
    let daemon = words.any(|w| w == "daemon");
    Holder { pid, daemon, path }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_named_and_a_daemon_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let held = try_acquire(dir.path(), Role::Daemon).unwrap().unwrap();
        let holder = try_acquire(dir.path(), Role::OneShot)
            .unwrap()
            .err()
            .unwrap();
        assert_eq!(holder.pid, Some(std::process::id().to_string()));
        assert!(holder.daemon);
        assert!(
            acquire(dir.path())
                .err()
                .unwrap()
                .to_string()
                .contains(&format!("already running, pid {}", std::process::id()))
        );
        drop(held);
        let one_shot = acquire(dir.path()).unwrap();
        let holder = try_acquire(dir.path(), Role::Daemon)
            .unwrap()
            .err()
            .unwrap();
        assert!(!holder.daemon);
        drop(one_shot);
        assert!(try_acquire(dir.path(), Role::Daemon).unwrap().is_ok());
    }
}
