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
//! hex; the writer mark (with the MD5 written) goes in an extended attribute where the
//! filesystem has them, so a file whose bytes changed at rest is a damaged copy of our
//! version (`corrupt`), not another writer's. The service's clock is the file system's
//! (ctime), which no writer sets.
//!
//! The copy is private whatever the umask: directories devlogd creates are 0700 and files
//! 0600 (the mirror of a private journal must not be readable by other local users).
//!
//! A configured directory must exist: recreating it would write backups onto the local
//! disk under an unmounted mount point. Only the built-in mirror is created on demand.

use super::content::Content;
use super::{Precondition, Put, PutOutcome, Remote, RemoteBlob, RemoteError, Sink};
use crate::fsutil::{self, Beneath};
use async_trait::async_trait;
use rustix::fs::{FlockOperation, OFlags, flock};
use std::io::Write;
use std::os::fd::OwnedFd;
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
/// The writer's host name, for people ([`RemoteBlob::host`]).
const HOST_XATTR: &str = "user.devlogd.host";
/// What a layer above sealed with the blob ([`RemoteBlob::sealed`]).
const SEALED_XATTR: &str = "user.devlogd.sealed";
/// Extended attribute holding the file's mtime (ns) when devlogd wrote it: bytes that no
/// longer match the mark while the mtime is still this one changed without a write (bit
/// rot, a damaged disk); a write by another tool moves the mtime.
const MTIME_XATTR: &str = "user.devlogd.mtime";

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
/// A path as shown in an error: names below the mirror are written by others (a newline or
/// an escape sequence in one must not forge a line on the user's terminal).
fn shown(path: &Path) -> String {
    crate::redact::printable(&path.display().to_string()).into_owned()
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> RemoteError {
    let message = format!("cannot {what} {}: {e}", shown(path));
    use rustix::io::Errno;
    let outage = matches!(
        Errno::from_io_error(&e),
        Some(Errno::IO | Errno::NOTCONN | Errno::STALE | Errno::HOSTDOWN | Errno::TIMEDOUT)
    ) || e.kind() == std::io::ErrorKind::NotConnected;
    if outage {
        RemoteError::Unreachable { message }
    } else if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        RemoteError::Permanent {
            message: format!(
                "cannot {what} {}: a symlink is in the way (the directory remote never follows symlinks; remove it)",
                shown(path)
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

/// The listing entry of an open blob file whose content hashes to `md5`. While its mtime is
/// the one devlogd wrote it with, its MD5 and ETag are the MD5 it was written with (kept in
/// its writer mark), so bytes that changed at rest show as a damaged copy of that version
/// ([`RemoteBlob::corrupt`]), not as another version; a file another tool wrote (no mark,
/// or a later mtime) is what its bytes are.
fn blob_of(file: &std::fs::File, name: &str, md5: [u8; 16], size: u64) -> RemoteBlob {
    use std::os::unix::fs::MetadataExt;
    let mark = xattr::get(file, WRITER_XATTR);
    let meta = file.metadata().ok();
    let written_ns = meta
        .as_ref()
        .map(|m| m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128);
    let untouched = written_ns.is_some_and(|mtime| {
        xattr::get(file, MTIME_XATTR).is_some_and(|kept| kept == mtime.to_string())
    });
    // The ctime: set by the kernel at the write (or the rename into place), never by a writer.
    let service_ns = meta
        .as_ref()
        .map(|m| m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128);
    let written_md5 = mark
        .as_deref()
        .filter(|_| untouched)
        .and_then(|mark| super::marked_md5(mark, name))
        .unwrap_or(md5);
    let writer = mark.and_then(|mark| super::writer_from_mark(&mark, Some(md5), name));
    RemoteBlob {
        name: name.to_string(),
        size,
        md5: Some(written_md5),
        etag: super::hex(&written_md5),
        host: writer
            .as_ref()
            .and_then(|_| xattr::get(file, HOST_XATTR))
            .map(|h| crate::redact::safe_host(&h)),
        writer,
        written_ns,
        service_ns,
        corrupt: written_md5 != md5,
        sealed: xattr::get(file, SEALED_XATTR),
    }
}

/// Read the blob at `name` in chunks into `chunks`; the MD5 of the bytes sent must be the
/// one the blob was written with ([`RemoteError::Corrupt`] otherwise).
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
    let blob = blob_of(&file, name, hasher.finalize().into(), size);
    if blob.corrupt {
        return Err(RemoteError::Corrupt {
            name: name.to_string(),
        });
    }
    Ok(Some(blob))
}

/// Under the lock: copy `name` into `history_name` if the file is the version `etag` (the
/// MD5 it was written with, checked over exactly what was copied; a damaged copy is kept as
/// it is). A copy, not a hard link: a link would share the inode with the current file, and
/// a tool that writes the current file in place would rewrite the history too. The copy
/// keeps the version's mtime (its write time) and writer mark; its ctime says when it was
/// kept. A retry finds its copy there and makes none; the same bytes written again later (a
/// version whose name is taken by an older copy) are kept next to it.
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
    let Some(hist_file) = free_history_name(root, &src, etag, history_name, hist_file)? else {
        return Ok(()); // kept already (this is a retry)
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
    if blob_of(&src, name, md5, 0).etag != etag {
        return Err(RemoteError::Conflict);
    }
    for attribute in [WRITER_XATTR, MTIME_XATTR, HOST_XATTR, SEALED_XATTR] {
        if let Some(value) = xattr::get(&src, attribute) {
            xattr::set(&tmp.file, attribute, &value);
        }
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
        .rename_to(&tmp.name, &hist_parent, &hist_file)
        .map_err(|e| io_error("keep a version of", &src_path, e))?;
    tmp.placed = true;
    hist_parent.sync();
    Ok(())
}

/// The file name in the history directory to keep the version open as `src` under, or
/// `None` when a copy of that version is there already. History names derive from the
/// version's ETag, which is its MD5 here: a copy made before `src` was written holds the
/// same bytes kept at an earlier replacement, and this one goes next to it. A later file
/// there that is not this version (planted under the predictable name) is an error: the
/// version is not kept, so nothing may replace it.
fn free_history_name(
    root: &Beneath,
    src: &std::fs::File,
    etag: &str,
    history_name: &str,
    hist_file: &str,
) -> Result<Option<String>, RemoteError> {
    use std::os::unix::fs::MetadataExt;
    let ctime = |m: &std::fs::Metadata| m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128;
    let written = src
        .metadata()
        .map_err(|e| io_error("read", &root.path().join(history_name), e))?;
    let written = ctime(&written);
    let later = format!("{hist_file}.{written}");
    let (parent, _) = split(history_name);
    for candidate in [hist_file.to_string(), later] {
        let rel = if parent.is_empty() {
            candidate.clone()
        } else {
            format!("{parent}/{candidate}")
        };
        match root.open_file(&rel) {
            Err(e) if fsutil::is_gone(&e) => return Ok(Some(candidate)),
            Err(e) => return Err(io_error("read", &root.path().join(&rel), e)),
            Ok(kept) => {
                let kept_at = kept.metadata().map(|m| ctime(&m)).unwrap_or(0);
                if kept_at < written {
                    continue;
                }
                let path = root.path().join(&rel);
                let (md5, size) =
                    fsutil::md5_of_reader(&kept).map_err(|e| io_error("read", &path, e))?;
                if blob_of(&kept, &rel, md5, size).etag == etag {
                    return Ok(None);
                }
                return Err(RemoteError::Permanent {
                    message: format!(
                        "cannot keep the replaced version of {}: its history name holds other content",
                        shown(&path)
                    ),
                });
            }
        }
    }
    Ok(None)
}

fn delete_blocking(root: &Beneath, name: &str, only_if: &Precondition) -> Result<(), RemoteError> {
    let path = root.path().join(name);
    let (parent_rel, file_name) = split(name);
    let parent = match root.open_dir(parent_rel, false) {
        Ok(p) => p,
        Err(e)
            if fsutil::is_gone(&e)
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
        {
            return Ok(());
        }
        Err(e) => return Err(io_error("open", &root.path().join(parent_rel), e)),
    };
    {
        let _lock = DirLock::take(root).map_err(|e| io_error("lock", root.path(), e))?;
        let Some(current) = blob_at(root, name).map_err(|e| io_error("read", &path, e))? else {
            return Ok(());
        };
        let holds = match only_if {
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
                match dir.open_here(&name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o600) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                };
            // Held until the file is closed, it tells a later cleaner that this file is
            // still being written.
            let _ = flock(&fd, FlockOperation::NonBlockingLockExclusive);
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
        let Ok(fd) = dir.open_here(&name, OFlags::RDONLY | OFlags::NONBLOCK, 0) else {
            continue;
        };
        let free = flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok();
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
            OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK,
            0o600,
        )?;
        let file = std::fs::File::from(fd);
        if !file.metadata()?.file_type().is_file() {
            return Err(std::io::Error::from(rustix::io::Errno::NXIO));
        }
        let fd = OwnedFd::from(file);
        flock(&fd, FlockOperation::LockExclusive)?;
        Ok(DirLock { _fd: fd })
    }
}

fn put_blocking(
    root: &Beneath,
    name: &str,
    content: &Content,
    precondition: &Precondition,
    writer: &str,
    host: &str,
    seal: Option<&super::Seal>,
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
    if !host.is_empty() {
        xattr::set(&tmp.file, HOST_XATTR, &crate::redact::safe_host(host));
    }
    if let Some(seal) = seal {
        xattr::set(&tmp.file, SEALED_XATTR, &seal());
    }
    if let Ok(meta) = tmp.file.metadata() {
        use std::os::unix::fs::MetadataExt;
        let mtime = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        xattr::set(&tmp.file, MTIME_XATTR, &mtime.to_string());
    }
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

/// The file system's clock: the ctime it gives a temporary file created now (the kernel's
/// time on a local disk, the server's on most network file systems; the times history is
/// measured in).
fn file_system_now(root: &Beneath) -> Result<time::OffsetDateTime, RemoteError> {
    use std::os::unix::fs::MetadataExt;
    let tmp_path = root.path().join(TMP_DIR);
    let tmp_dir = root
        .open_dir(TMP_DIR, true)
        .map_err(|e| io_error("write", &tmp_path, e))?;
    let tmp = TempFile::create(tmp_dir).map_err(|e| io_error("write", &tmp_path, e))?;
    let meta = tmp
        .file
        .metadata()
        .map_err(|e| io_error("read", &tmp_path, e))?;
    let ns = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
    time::OffsetDateTime::from_unix_timestamp_nanos(ns).map_err(|e| RemoteError::Permanent {
        message: format!("the file system gave a time devlogd cannot read: {e}"),
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
            message: format!("cannot list {}: {e}", shown(dir)),
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

    async fn put_observed(&self, put: Put<'_>) -> Result<PutOutcome, RemoteError> {
        super::check_name(put.name)?;
        let root = self.open_root()?;
        let precondition = put.precondition.clone();
        let (name, writer) = (put.name.to_string(), put.writer.to_string());
        let host = put.host.to_string();
        let content = put.content.clone();
        let seal = put.seal.clone();
        blocking(move || {
            put_blocking(
                &root,
                &name,
                &content,
                &precondition,
                &writer,
                &host,
                seal.as_ref(),
            )
        })
        .await
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        super::check_name(name)?;
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
            super::check_name(p)?;
        }
        if !self.dir.exists() && self.create {
            return Ok(Vec::new());
        }
        let root = self.open_root()?;
        let path = path.map(str::to_string);
        blocking(move || list_history_blocking(&root, path.as_deref())).await
    }

    async fn get(&self, name: &str, sink: Sink<'_>) -> Result<Option<RemoteBlob>, RemoteError> {
        super::check_name(name)?;
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

    async fn preserve(&self, name: &str, etag: &str, kept_as: &str) -> Result<(), RemoteError> {
        super::check_name(name)?;
        super::check_name(kept_as)?;
        let root = self.open_root()?;
        let (name, etag, kept_as) = (name.to_string(), etag.to_string(), kept_as.to_string());
        blocking(move || preserve_blocking(&root, &name, &etag, &kept_as)).await
    }

    async fn service_now(&self) -> Result<Option<time::OffsetDateTime>, RemoteError> {
        if !self.dir.exists() && self.create {
            return Ok(None); // the built-in mirror before its first push: nothing kept yet
        }
        let root = self.open_root()?;
        blocking(move || file_system_now(&root).map(Some)).await
    }

    async fn delete(&self, name: &str, precondition: &Precondition) -> Result<(), RemoteError> {
        super::check_name(name)?;
        let root = self.open_root()?;
        let name = name.to_string();
        let precondition = precondition.clone();
        blocking(move || delete_blocking(&root, &name, &precondition)).await
    }
}

/// Extended attributes on open descriptors (Linux and macOS); every failure means "no
/// attribute".
mod xattr {
    pub fn set(file: &std::fs::File, name: &str, value: &str) {
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        let _ = rustix::fs::fsetxattr(
            file,
            name,
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        );
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        let _ = (file, name, value);
    }

    pub fn get(file: &std::fs::File, name: &str) -> Option<String> {
        let mut buf = [0u8; 512];
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        let n = rustix::fs::fgetxattr(file, name, &mut buf[..]).ok()?;
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        let n = {
            let _ = (file, name);
            0
        };
        if n == 0 {
            return None;
        }
        String::from_utf8(buf[..n].to_vec()).ok()
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
            .put("a.md", &content(b"a"), &Precondition::IfAbsent, "w")
            .await
            .unwrap_err();
        assert!(matches!(e, RemoteError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("is it mounted?"), "{e}");
        assert!(!gone.exists(), "not recreated");
        let mirror = DirectoryRemote::new(&gone, true);
        assert!(mirror.list().await.unwrap().is_empty());
        mirror
            .put("a.md", &content(b"a"), &Precondition::IfAbsent, "w")
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

    fn content(data: &'static [u8]) -> Content {
        Content::from_bytes(Bytes::from_static(data))
    }

    #[tokio::test]
    async fn a_name_with_dot_dot_segments_reaches_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let remote_dir = dir.path().join("remote");
        std::fs::create_dir(&remote_dir).unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        std::fs::write(dir.path().join("other/x"), b"not ours").unwrap();
        let remote = DirectoryRemote::new(&remote_dir, false);
        let name = ".devlog-history/../../other/x";
        let e = remote.delete(name, &Precondition::None).await.unwrap_err();
        assert!(matches!(e, RemoteError::Permanent { .. }), "{e}");
        assert!(e.to_string().contains(name), "names the name: {e}");
        assert!(remote.head(name).await.is_err());
        let mut sink = Vec::new();
        assert!(remote.get(name, &mut sink).await.is_err());
        assert!(remote.preserve("a.md", "e", name).await.is_err());
        assert!(
            remote
                .put(name, &content(b"x"), &Precondition::None, "w")
                .await
                .is_err()
        );
        assert_eq!(
            std::fs::read(dir.path().join("other/x")).unwrap(),
            b"not ours"
        );
    }

    #[tokio::test]
    async fn a_flipped_byte_is_a_damaged_copy_and_the_next_put_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let remote = DirectoryRemote::new(dir.path(), false);
        let put = remote
            .put("a.md", &content(b"hello"), &Precondition::IfAbsent, "w")
            .await
            .unwrap();
        let path = dir.path().join("a.md");
        if remote.head("a.md").await.unwrap().unwrap().writer.is_none() {
            return; // no user xattrs on this file system: no MD5 kept, nothing to check
        }
        // Flipped in place, as bit rot does: the inode, its mark and its mtime stay.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(b"j").unwrap();
        file.set_times(std::fs::FileTimes::new().set_modified(mtime))
            .unwrap();
        drop(file);
        let blob = remote.head("a.md").await.unwrap().unwrap();
        assert!(blob.corrupt);
        assert_eq!(blob.etag, put.etag, "still our version, damaged");
        assert_eq!(blob.md5, Some(put.md5));
        let mut sink = Vec::new();
        let e = remote.get("a.md", &mut sink).await.unwrap_err();
        assert!(matches!(e, RemoteError::Corrupt { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "the stored copy of a.md is damaged: its bytes no longer match the MD5 written with it"
        );
        // The next push keeps the damaged copy and replaces it, with no conflict.
        let kept = crate::remote::history_name::version_name("a.md", &put.etag, "w");
        remote.preserve("a.md", &put.etag, &kept).await.unwrap();
        remote
            .put(
                "a.md",
                &content(b"hello2"),
                &Precondition::IfMatch(put.etag),
                "w",
            )
            .await
            .unwrap();
        let mut sink = Vec::new();
        let repaired = remote.get("a.md", &mut sink).await.unwrap().unwrap();
        assert_eq!(sink, b"hello2");
        // Another tool writing in place moves the mtime: another writer's version.
        std::fs::write(&path, b"theirs").unwrap();
        let theirs = remote.head("a.md").await.unwrap().unwrap();
        assert!(!theirs.corrupt);
        assert_ne!(theirs.etag, repaired.etag);
        assert_eq!(theirs.writer, None);
    }

    #[tokio::test]
    async fn keeping_a_version_twice_makes_one_copy_and_the_same_bytes_later_another() {
        let dir = tempfile::tempdir().unwrap();
        let remote = DirectoryRemote::new(dir.path(), false);
        let a = remote
            .put("a.md", &content(b"A"), &Precondition::IfAbsent, "w")
            .await
            .unwrap();
        let kept_a = crate::remote::history_name::version_name("a.md", &a.etag, "w");
        for _ in 0..3 {
            remote.preserve("a.md", &a.etag, &kept_a).await.unwrap();
        }
        assert_eq!(remote.list_history(Some("a.md")).await.unwrap().len(), 1);
        // A → B → A: the second A is another version with the same bytes.
        let b = remote
            .put(
                "a.md",
                &content(b"B"),
                &Precondition::IfMatch(a.etag.clone()),
                "w",
            )
            .await
            .unwrap();
        let kept_b = crate::remote::history_name::version_name("a.md", &b.etag, "w");
        remote.preserve("a.md", &b.etag, &kept_b).await.unwrap();
        let a2 = remote
            .put("a.md", &content(b"A"), &Precondition::IfMatch(b.etag), "w")
            .await
            .unwrap();
        remote.preserve("a.md", &a2.etag, &kept_a).await.unwrap();
        remote.preserve("a.md", &a2.etag, &kept_a).await.unwrap();
        let history = remote.list_history(Some("a.md")).await.unwrap();
        assert_eq!(history.len(), 3, "{history:?}");
        assert!(history.iter().all(|b| b.service_ns.is_some()));
        // A co-writer takes the (predictable) name of the next version's copy first: the
        // version is not kept, and that is an error, not a quiet success.
        let kept_a2 = crate::remote::history_name::version_name("a.md", &a2.etag, "x");
        std::fs::write(dir.path().join(&kept_a2), b"planted").unwrap();
        let e = remote
            .preserve("a.md", &a2.etag, &kept_a2)
            .await
            .unwrap_err();
        assert!(matches!(e, RemoteError::Permanent { .. }), "{e}");
    }

    #[tokio::test]
    async fn the_file_systems_clock_is_the_services() {
        let dir = tempfile::tempdir().unwrap();
        let remote = DirectoryRemote::new(dir.path(), false);
        let now = remote.service_now().await.unwrap().unwrap();
        assert!((now - time::OffsetDateTime::now_utc()).abs() < time::Duration::seconds(5));
        assert!(
            remote.list().await.unwrap().is_empty(),
            "no file left behind"
        );
    }
}
