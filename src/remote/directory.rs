//! The directory remote (`file:///path`): the embedded default mirror, and a real backend
//! for a NAS or a synced folder.
//!
//! Writes are atomic: the bytes are streamed from the open local file (never read whole
//! into memory) into a temporary file in `.devlogd-tmp/` at the top of the remote and
//! fsynced; then, holding an `flock` on `.devlogd.lock`, the precondition is checked and
//! the file renamed into place, and the directory fsynced. A crash leaves either the old
//! copy or the new one, never half of one, and two devlogd writers (two machines on one
//! NAS) cannot both pass a precondition on the same file. Each temporary file is `flock`ed
//! by the process writing it, so the first use of the remote in a process removes the
//! ones a crashed writer left behind (and no one else's). The ETag is the content's MD5 in
//! hex; the writer mark goes in an extended attribute where the filesystem has them.
//!
//! The copy is private whatever the umask: directories devlogd creates are 0700 and files
//! 0600 (the mirror of a private journal must not be readable by other local users).
//!
//! A configured directory must exist: recreating it would write backups onto the local
//! disk under an unmounted mount point. Only the built-in mirror is created on demand.

use super::content::Content;
use super::{Precondition, PutOutcome, Remote, RemoteBlob, RemoteError};
use crate::fsutil::{self, Beneath};
use async_trait::async_trait;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Where temporary files are written, at the top of the remote; listings skip it.
const TMP_DIR: &str = ".devlogd-tmp";
/// Temporary files of older versions carried this marker next to the blob; listings skip
/// them, and remove those more than an hour old.
const OLD_TMP_MARKER: &str = ".devlogd-tmp-";
/// The lock file that serialises precondition checks and renames.
const LOCK_FILE: &str = ".devlogd.lock";
/// Extended attribute holding the writer mark.
const WRITER_XATTR: &str = "user.devlogd.writer";

pub struct DirectoryRemote {
    dir: PathBuf,
    /// True for the built-in mirror, which may be created; a configured directory may not.
    create: bool,
    /// Once per process, at first use: stale temporary files removed, the mirror made private.
    cleaned: Once,
}

impl DirectoryRemote {
    pub fn new(dir: &Path, create: bool) -> Self {
        DirectoryRemote {
            dir: dir.to_path_buf(),
            create,
            cleaned: Once::new(),
        }
    }

    fn check_name(name: &str) -> Result<(), RemoteError> {
        let bad = name.is_empty()
            || name.starts_with('/')
            || name
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..");
        if bad {
            return Err(RemoteError::Permanent {
                message: format!("invalid name for the directory remote: {name:?}"),
            });
        }
        Ok(())
    }

    /// The remote directory, opened: it is there (or may be created), and stale temporary
    /// files from crashed writers are gone. Everything below is reached through this handle
    /// without following a symlink.
    fn open_root(&self) -> Result<Beneath, RemoteError> {
        if !self.dir.is_dir() {
            if !self.create {
                return Err(RemoteError::Unreachable {
                    message: format!(
                        "the directory remote {} does not exist (is it mounted?); create it to start backing up there",
                        self.dir.display()
                    ),
                });
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| io_error("create", &self.dir, e))?;
        }
        let root = Beneath::open(&self.dir).map_err(|e| io_error("open", &self.dir, e))?;
        // Once per process, not on every request.
        self.cleaned.call_once(|| {
            if self.create {
                // The built-in mirror is private even if an older version made it 0755.
                let _ =
                    std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
            }
            let removed = remove_stale_temps(&root);
            if removed > 0 {
                tracing::info!(removed, remote = %self.dir.display(), "removed temporary files left by an interrupted upload");
            }
        });
        Ok(root)
    }
}

/// Sort an I/O error: a vanished mount or a dead network filesystem is an outage (retried
/// with back-off), a full or read-only filesystem a condition that clears (retried, the
/// path kept pending); anything else is about this file.
fn io_error(what: &str, path: &Path, e: std::io::Error) -> RemoteError {
    let message = format!("cannot {what} {}: {e}", path.display());
    let outage = matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::ENOTCONN | libc::ESTALE | libc::EHOSTDOWN | libc::ETIMEDOUT)
    ) || e.kind() == std::io::ErrorKind::NotConnected;
    if outage {
        RemoteError::Unreachable { message }
    } else if e.raw_os_error() == Some(libc::ELOOP) {
        RemoteError::Permanent {
            message: format!(
                "cannot {what} {}: a symlink is in the way (the directory remote never follows symlinks; remove it)",
                path.display()
            ),
        }
    } else if fsutil::is_transient_io(&e) {
        RemoteError::Transient {
            message,
            retry_after: None,
        }
    } else {
        RemoteError::Permanent { message }
    }
}

/// `dir/name` → (`dir`, `name`); a top-level name has the directory `""`.
fn split(name: &str) -> (&str, &str) {
    match name.rfind('/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    }
}

/// The blob at `name`, if a regular file is there. Opened without following a symlink at
/// any component and without blocking on a FIFO; anything that is not a regular file is
/// no blob.
fn blob_at(root: &Beneath, name: &str) -> std::io::Result<Option<RemoteBlob>> {
    let file = match root.open_file(name) {
        Ok(f) => f,
        Err(e) if fsutil::is_gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let (md5, size) = fsutil::md5_of_reader(&file)?;
    Ok(Some(blob_of(&file, name, md5, size)))
}

/// The listing entry of an open blob file whose content hashes to `md5`.
fn blob_of(file: &std::fs::File, name: &str, md5: [u8; 16], size: u64) -> RemoteBlob {
    let mark = xattr::get(file, WRITER_XATTR);
    let written_ns = file.metadata().ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
    });
    RemoteBlob {
        name: name.to_string(),
        size,
        md5: Some(md5),
        etag: super::hex(&md5),
        writer: mark.and_then(|mark| super::writer_from_mark(&mark, Some(md5), name)),
        written_ns,
    }
}

/// Read the blob at `name` in chunks into `chunks`; its MD5 is computed from the bytes
/// sent (the ETag is the content's MD5, so there is nothing else to compare with).
fn get_blocking(
    root: &Beneath,
    name: &str,
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<Option<RemoteBlob>, RemoteError> {
    use md5::{Digest, Md5};
    use std::io::Read;
    let path = root.path().join(name);
    let mut file = match root.open_file(name) {
        Ok(f) => f,
        Err(e) if fsutil::is_gone(&e) => return Ok(None),
        Err(e) => return Err(io_error("read", &path, e)),
    };
    let mut hasher = Md5::new();
    let mut size = 0u64;
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", &path, e)),
        };
        buf.truncate(n);
        hasher.update(&buf);
        size += n as u64;
        if chunks.blocking_send(buf).is_err() {
            return Err(RemoteError::Permanent {
                message: format!("download of {name} abandoned"),
            });
        }
    }
    Ok(Some(blob_of(&file, name, hasher.finalize().into(), size)))
}

/// Under the lock: copy `name` into `history_name` if the bytes copied are the version
/// `etag` (the ETag is the content's MD5, computed over exactly what was copied). A copy,
/// not a hard link: a link would share the inode with the current file, and a tool that
/// writes the current file in place would rewrite the history too. The copy keeps the
/// version's mtime (its write time) and writer mark.
fn preserve_blocking(
    root: &Beneath,
    name: &str,
    etag: &str,
    history_name: &str,
) -> Result<(), RemoteError> {
    use md5::{Digest, Md5};
    use std::io::Read;
    let src_path = root.path().join(name);
    let (hist_parent_rel, hist_file) = split(history_name);
    let hist_parent = root
        .open_dir(hist_parent_rel, true)
        .map_err(|e| io_error("create", &root.path().join(hist_parent_rel), e))?;
    let tmp_dir = root
        .open_dir(TMP_DIR, true)
        .map_err(|e| io_error("write", &root.path().join(TMP_DIR), e))?;
    let mut tmp = TempFile::create(tmp_dir).map_err(|e| io_error("write", &src_path, e))?;
    let _lock = DirLock::take(root).map_err(|e| io_error("lock", root.path(), e))?;
    let mut src = match root.open_file(name) {
        Ok(f) => f,
        Err(e) if fsutil::is_gone(&e) => return Err(RemoteError::Conflict),
        Err(e) => return Err(io_error("read", &src_path, e)),
    };
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", &src_path, e)),
        };
        hasher.update(&buf[..n]);
        tmp.file
            .write_all(&buf[..n])
            .map_err(|e| io_error("keep a version of", &src_path, e))?;
    }
    let md5: [u8; 16] = hasher.finalize().into();
    if super::hex(&md5) != etag {
        return Err(RemoteError::Conflict);
    }
    if let Some(mark) = xattr::get(&src, WRITER_XATTR) {
        xattr::set(&tmp.file, WRITER_XATTR, &mark);
    }
    if let Ok(modified) = src.metadata().and_then(|m| m.modified()) {
        let _ = tmp
            .file
            .set_times(std::fs::FileTimes::new().set_modified(modified));
    }
    tmp.file
        .sync_all()
        .map_err(|e| io_error("write", &src_path, e))?;
    tmp.dir
        .rename_to(&tmp.name, &hist_parent, hist_file)
        .map_err(|e| io_error("keep a version of", &src_path, e))?;
    tmp.placed = true;
    hist_parent.sync();
    Ok(())
}

fn delete_blocking(
    root: &Beneath,
    name: &str,
    precondition: &Precondition,
) -> Result<(), RemoteError> {
    let path = root.path().join(name);
    let (parent_rel, file_name) = split(name);
    let parent = match root.open_dir(parent_rel, false) {
        Ok(p) => p,
        Err(e) if fsutil::is_gone(&e) || e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Ok(());
        }
        Err(e) => return Err(io_error("open", &root.path().join(parent_rel), e)),
    };
    {
        let _lock = DirLock::take(root).map_err(|e| io_error("lock", root.path(), e))?;
        let Some(current) = blob_at(root, name).map_err(|e| io_error("read", &path, e))? else {
            return Ok(());
        };
        let holds = match precondition {
            Precondition::IfMatch(etag) => &current.etag == etag,
            Precondition::IfAbsent => false,
            Precondition::None => true,
        };
        if !holds {
            return Err(RemoteError::Conflict);
        }
        match parent.unlink_here(file_name) {
            Ok(()) => {}
            Err(e) if fsutil::is_gone(&e) => {}
            Err(e) => return Err(io_error("delete", &path, e)),
        }
    }
    parent.sync();
    Ok(())
}

/// A temporary file being written: `flock`ed while it lives, removed on drop unless it
/// was renamed into place.
struct TempFile {
    dir: Beneath,
    name: String,
    file: std::fs::File,
    placed: bool,
}

impl TempFile {
    /// A new file with an unpredictable name in `dir`, created exclusively (never through
    /// a symlink someone planted), mode 0600.
    fn create(dir: Beneath) -> std::io::Result<TempFile> {
        loop {
            let name = format!("{:032x}", rand::random::<u128>());
            let fd =
                match dir.open_here(&name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                };
            // SAFETY: flock on a descriptor we own. Held until the file is closed, it tells
            // a later cleaner that this file is still being written.
            unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            return Ok(TempFile {
                dir,
                name,
                file: std::fs::File::from(fd),
                placed: false,
            });
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = self.dir.unlink_here(&self.name);
        }
    }
}

/// Remove temporary files nobody holds a lock on (their writer crashed); returns how many.
fn remove_stale_temps(root: &Beneath) -> usize {
    let Ok(dir) = root.open_dir(TMP_DIR, false) else {
        return 0;
    };
    let mut removed = 0;
    for name in dir.names().unwrap_or_default() {
        let Ok(fd) = dir.open_here(&name, libc::O_RDONLY | libc::O_NONBLOCK, 0) else {
            continue;
        };
        // SAFETY: flock on a descriptor we own.
        let free = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free && dir.unlink_here(&name).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// An exclusive `flock` on the remote's lock file, released when the file is closed.
struct DirLock {
    _fd: OwnedFd,
}

impl DirLock {
    fn take(root: &Beneath) -> std::io::Result<DirLock> {
        // Never through a symlink, never blocking on a FIFO put in its place.
        let fd = root.open_here(
            LOCK_FILE,
            libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK,
            0o600,
        )?;
        let file = std::fs::File::from(fd);
        if !file.metadata()?.file_type().is_file() {
            return Err(std::io::Error::from_raw_os_error(libc::ENXIO));
        }
        let fd = OwnedFd::from(file);
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DirLock { _fd: fd })
    }
}

fn put_blocking(
    root: &Beneath,
    name: &str,
    content: &Content,
    precondition: &Precondition,
    writer: &str,
) -> Result<PutOutcome, RemoteError> {
    let dest = root.path().join(name);
    let tmp_dir = root
        .open_dir(TMP_DIR, true)
        .map_err(|e| io_error("write", &root.path().join(TMP_DIR), e))?;
    let mut tmp = TempFile::create(tmp_dir).map_err(|e| io_error("write", &dest, e))?;
    let md5 = content.copy_to(&mut tmp.file).map_err(|e| match e {
        super::content::ContentError::Write(e) => io_error("write", &dest, e),
        other => other.into(),
    })?;
    tmp.file.flush().map_err(|e| io_error("write", &dest, e))?;
    // Best effort: filesystems without user xattrs simply have no writer marks.
    xattr::set(
        &tmp.file,
        WRITER_XATTR,
        &super::writer_mark(writer, &md5, name),
    );
    tmp.file
        .sync_all()
        .map_err(|e| io_error("write", &dest, e))?;
    let (parent_rel, file_name) = split(name);
    let parent = root
        .open_dir(parent_rel, true)
        .map_err(|e| io_error("create", &root.path().join(parent_rel), e))?;
    {
        let _lock = DirLock::take(root).map_err(|e| io_error("lock", root.path(), e))?;
        let current = blob_at(root, name).map_err(|e| io_error("read", &dest, e))?;
        let holds = match precondition {
            Precondition::IfAbsent => current.is_none(),
            Precondition::IfMatch(etag) => current.is_some_and(|b| &b.etag == etag),
            Precondition::None => true,
        };
        if !holds {
            return Err(RemoteError::Conflict);
        }
        tmp.dir
            .rename_to(&tmp.name, &parent, file_name)
            .map_err(|e| io_error("write", &dest, e))?;
        tmp.placed = true;
    }
    parent.sync();
    Ok(PutOutcome {
        etag: super::hex(&md5),
        md5,
    })
}

fn list_blocking(root: &Beneath) -> Result<Vec<RemoteBlob>, RemoteError> {
    list_under(root, root.path())
}

/// Every blob in the history area below `under` (`None`: all of it).
fn list_history_blocking(
    root: &Beneath,
    under: Option<&str>,
) -> Result<Vec<RemoteBlob>, RemoteError> {
    let mut start = root.path().join(super::history_name::HISTORY_DIR);
    if let Some(path) = under {
        start = start.join(path);
    }
    match std::fs::symlink_metadata(&start) {
        Ok(m) if m.is_dir() => list_under(root, &start),
        Ok(_) => Ok(Vec::new()),
        Err(e) if fsutil::is_gone(&e) => Ok(Vec::new()),
        Err(e) => Err(io_error("list", &start, e)),
    }
}

fn list_under(root: &Beneath, start: &Path) -> Result<Vec<RemoteBlob>, RemoteError> {
    let dir = root.path();
    let mut blobs = Vec::new();
    let top = start == dir;
    let walker = ignore::WalkBuilder::new(start)
        .standard_filters(false)
        .follow_links(false)
        .filter_entry(move |e| {
            !(top
                && e.depth() == 1
                && (e.file_name() == TMP_DIR || e.file_name() == super::history_name::HISTORY_DIR))
        })
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| RemoteError::Permanent {
            message: format!("cannot list {}: {e}", dir.display()),
        })?;
        let file_name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_some_and(|t| t.is_file())
            || (top && entry.depth() == 1 && file_name == LOCK_FILE)
        {
            continue;
        }
        if file_name.contains(OLD_TMP_MARKER) {
            remove_if_old(entry.path());
            continue;
        }
        let Ok(name) = crate::fsutil::relative(dir, entry.path()) else {
            continue;
        };
        if let Some(blob) = blob_at(root, &name).map_err(|e| io_error("read", entry.path(), e))? {
            blobs.push(blob);
        }
    }
    Ok(blobs)
}

/// An older version's temporary file, untouched for an hour: its writer is gone.
fn remove_if_old(path: &Path) {
    let old = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(3600));
    if old {
        let _ = std::fs::remove_file(path);
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RemoteError> + Send + 'static,
) -> Result<T, RemoteError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RemoteError::Permanent {
            message: format!("directory remote task failed: {e}"),
        })?
}

#[async_trait]
impl Remote for DirectoryRemote {
    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn credential_source(&self) -> String {
        "file permissions".to_string()
    }

    async fn put(
        &self,
        name: &str,
        content: &Content,
        precondition: &Precondition,
        writer: &str,
    ) -> Result<PutOutcome, RemoteError> {
        Self::check_name(name)?;
        let root = self.open_root()?;
        let precondition = precondition.clone();
        let (name, writer) = (name.to_string(), writer.to_string());
        let content = content.clone();
        blocking(move || put_blocking(&root, &name, &content, &precondition, &writer)).await
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        Self::check_name(name)?;
        let root = self.open_root()?;
        let name = name.to_string();
        blocking(move || {
            blob_at(&root, &name).map_err(|e| io_error("read", &root.path().join(&name), e))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        if !self.dir.exists() && self.create {
            return Ok(Vec::new()); // the built-in mirror before its first push
        }
        let root = self.open_root()?;
        blocking(move || list_blocking(&root)).await
    }

    async fn list_history(&self, path: Option<&str>) -> Result<Vec<RemoteBlob>, RemoteError> {
        if let Some(p) = path {
            Self::check_name(p)?;
        }
        if !self.dir.exists() && self.create {
            return Ok(Vec::new());
        }
        let root = self.open_root()?;
        let path = path.map(str::to_string);
        blocking(move || list_history_blocking(&root, path.as_deref())).await
    }

    async fn get(
        &self,
        name: &str,
        sink: &mut (dyn std::io::Write + Send),
    ) -> Result<Option<RemoteBlob>, RemoteError> {
        Self::check_name(name)?;
        if !self.dir.exists() && self.create {
            return Ok(None);
        }
        let root = self.open_root()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let owned = name.to_string();
        let reader = blocking(move || get_blocking(&root, &owned, tx));
        tokio::pin!(reader);
        let mut write_error = None;
        let result = loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(chunk) => {
                        if write_error.is_none()
                            && let Err(e) = sink.write_all(&chunk)
                        {
                            write_error = Some(e);
                        }
                    }
                    None => break (&mut reader).await,
                },
                done = &mut reader => {
                    // Take what is still queued.
                    while let Some(chunk) = rx.recv().await {
                        if write_error.is_none()
                            && let Err(e) = sink.write_all(&chunk)
                        {
                            write_error = Some(e);
                        }
                    }
                    break done;
                }
            }
        };
        if let Some(e) = write_error {
            return Err(RemoteError::Permanent {
                message: format!("cannot write {name}: {e}"),
            });
        }
        result
    }

    async fn preserve(
        &self,
        name: &str,
        etag: &str,
        history_name: &str,
    ) -> Result<(), RemoteError> {
        Self::check_name(name)?;
        Self::check_name(history_name)?;
        let root = self.open_root()?;
        let (name, etag, history_name) =
            (name.to_string(), etag.to_string(), history_name.to_string());
        blocking(move || preserve_blocking(&root, &name, &etag, &history_name)).await
    }

    async fn delete(&self, name: &str, precondition: &Precondition) -> Result<(), RemoteError> {
        Self::check_name(name)?;
        let root = self.open_root()?;
        let name = name.to_string();
        let precondition = precondition.clone();
        blocking(move || delete_blocking(&root, &name, &precondition)).await
    }
}

/// Extended attributes through libc, on open descriptors; every failure means "no
/// attribute".
mod xattr {
    use std::os::fd::AsRawFd;

    pub fn set(file: &std::fs::File, name: &str, value: &str) {
        let Ok(name) = std::ffi::CString::new(name) else {
            return;
        };
        // SAFETY: valid fd, NUL-terminated name, value pointer and length from a &str.
        unsafe {
            #[cfg(target_os = "linux")]
            libc::fsetxattr(
                file.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            );
            #[cfg(target_os = "macos")]
            libc::fsetxattr(
                file.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
                0,
            );
        }
    }

    pub fn get(file: &std::fs::File, name: &str) -> Option<String> {
        let name = std::ffi::CString::new(name).ok()?;
        let mut buf = [0u8; 256];
        // SAFETY: valid fd, NUL-terminated name; the buffer's pointer and length match.
        let n = unsafe {
            #[cfg(target_os = "linux")]
            {
                libc::fgetxattr(
                    file.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
            #[cfg(target_os = "macos")]
            {
                libc::fgetxattr(
                    file.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    0,
                )
            }
            #[cfg(not(any(target_os = "linux", target_os = "macos")))]
            {
                -1isize
            }
        };
        if n <= 0 {
            return None;
        }
        String::from_utf8(buf[..n as usize].to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use md5::{Digest, Md5};

    #[tokio::test]
    async fn a_configured_directory_that_is_missing_is_an_outage_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nas/devlog");
        let remote = DirectoryRemote::new(&gone, false);
        let e = remote
            .put(
                "a.md",
                &Content::from_bytes(Bytes::from_static(b"a")),
                &Precondition::IfAbsent,
                "w",
            )
            .await
            .unwrap_err();
        assert!(matches!(e, RemoteError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("is it mounted?"), "{e}");
        assert!(!gone.exists(), "not recreated");
        let mirror = DirectoryRemote::new(&gone, true);
        assert!(mirror.list().await.unwrap().is_empty());
        mirror
            .put(
                "a.md",
                &Content::from_bytes(Bytes::from_static(b"a")),
                &Precondition::IfAbsent,
                "w",
            )
            .await
            .unwrap();
        assert!(gone.join("a.md").exists());
    }

    #[tokio::test]
    async fn preconditions_hold_and_the_writer_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let remote = DirectoryRemote::new(dir.path(), false);
        let md5: [u8; 16] = Md5::digest(b"one").into();
        let put = |data: &'static [u8], p: Precondition| {
            let remote = &remote;
            async move {
                let content = Content::from_bytes(Bytes::from_static(data));
                remote.put("d/n.md", &content, &p, "writer-1").await
            }
        };
        let first = put(b"one", Precondition::IfAbsent).await.unwrap();
        assert_eq!(first.etag, super::super::hex(&md5));
        assert!(matches!(
            put(b"two", Precondition::IfAbsent).await,
            Err(RemoteError::Conflict)
        ));
        assert!(matches!(
            put(b"two", Precondition::IfMatch("stale".into())).await,
            Err(RemoteError::Conflict)
        ));
        put(b"two", Precondition::IfMatch(first.etag))
            .await
            .unwrap();
        let blob = remote.head("d/n.md").await.unwrap().unwrap();
        assert_eq!(std::fs::read(dir.path().join("d/n.md")).unwrap(), b"two");
        // tmpfs and ext4 keep user xattrs; a filesystem without them reports no writer.
        if let Some(w) = &blob.writer {
            assert_eq!(w, "writer-1");
        }
        let names: Vec<String> = remote
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, vec!["d/n.md"], "no lock or temp files listed");
    }
}
