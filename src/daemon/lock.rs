//! The single-instance lock: an `flock` on a file in the state directory, holding the
//! daemon's pid. The kernel drops it when the process dies, so a crash leaves nothing stale.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

/// Take the lock or say who holds it.
pub fn acquire(state_dir: &Path) -> Result<InstanceLock, String> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let path = state_dir.join("devlogd.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(if pid.is_empty() {
            format!("devlogd is already running (lock {})", path.display())
        } else {
            format!(
                "devlogd is already running, pid {pid} (lock {})",
                path.display()
            )
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(InstanceLock { _file: file, path })
}
