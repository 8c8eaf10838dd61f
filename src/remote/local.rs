//! The directory remote (`file:///path`): the embedded default mirror, and a real backend
//! for a NAS or a synced folder.
//!
//! Writes are atomic: the bytes go to a hidden temporary file in the target directory and
//! are fsynced; then, holding an `flock` on `.devlogd.lock` in the remote directory, the
//! precondition is checked and the file renamed into place, and the directory fsynced. A
//! crash leaves either the old copy or the new one, never half of one, and two devlogd
//! writers (two machines on one NAS) cannot both pass a precondition on the same file. The
//! ETag is the content's MD5 in hex; the writer id goes in an extended attribute where the
//! filesystem has them.
//!
//! A configured directory must exist: recreating it would write backups onto the local
//! disk under an unmounted mount point. Only the built-in mirror is created on demand.

use super::{Precondition, PutOutcome, Remote, RemoteBlob, RemoteError};
use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files carry this marker; listings skip them.
const TMP_MARKER: &str = ".devlogd-tmp-";
/// The lock file that serialises precondition checks and renames.
const LOCK_FILE: &str = ".devlogd.lock";
/// Extended attribute holding the writer id.
const WRITER_XATTR: &str = "user.devlogd.writer";

pub struct DirectoryRemote {
    dir: PathBuf,
    /// True for the built-in mirror, which may be created; a configured directory may not.
    create: bool,
}

impl DirectoryRemote {
    pub fn new(dir: &Path, create: bool) -> Self {
        DirectoryRemote {
            dir: dir.to_path_buf(),
            create,
        }
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, RemoteError> {
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
        Ok(self.dir.join(name))
    }

    /// The remote directory is there (or may be created).
    fn ready(&self) -> Result<(), RemoteError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        if self.create {
            return std::fs::create_dir_all(&self.dir)
                .map_err(|e| io_error("create", &self.dir, e));
        }
        Err(RemoteError::Unreachable {
            message: format!(
                "the directory remote {} does not exist (is it mounted?); create it to start backing up there",
                self.dir.display()
            ),
        })
    }
}

/// Sort an I/O error: a vanished mount or a dead network filesystem is an outage (retried
/// with back-off); anything else is about this file.
fn io_error(what: &str, path: &Path, e: std::io::Error) -> RemoteError {
    let message = format!("cannot {what} {}: {e}", path.display());
    let outage = matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::ENOTCONN | libc::ESTALE | libc::EHOSTDOWN | libc::ETIMEDOUT)
    ) || e.kind() == std::io::ErrorKind::NotConnected;
    if outage {
        RemoteError::Unreachable { message }
    } else {
        RemoteError::Permanent { message }
    }
}

fn hex(md5: &[u8; 16]) -> String {
    md5.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5_of_file(path: &Path) -> std::io::Result<([u8; 16], u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize().into(), size))
}

fn blob_at(name: &str, path: &Path) -> std::io::Result<Option<RemoteBlob>> {
    match md5_of_file(path) {
        Ok((md5, size)) => Ok(Some(RemoteBlob {
            name: name.to_string(),
            size,
            md5: Some(md5),
            etag: hex(&md5),
            writer: xattr::get(path, WRITER_XATTR)
                .and_then(|mark| super::writer_from_mark(&mark, Some(md5))),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) {
    // Durability of the rename; some filesystems refuse fsync on directories.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_temp(dest: &Path, data: &[u8], mark: &str) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(
        ".{file_name}{TMP_MARKER}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    // Best effort: filesystems without user xattrs simply have no writer marks.
    xattr::set(&f, WRITER_XATTR, mark);
    f.sync_all()?;
    Ok(tmp)
}

/// An exclusive `flock` on the remote's lock file, released when the file is closed.
struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    fn take(dir: &Path) -> std::io::Result<DirLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DirLock { _file: file })
    }
}

fn put_blocking(
    root: &Path,
    dest: &Path,
    data: &[u8],
    md5: [u8; 16],
    precondition: &Precondition,
    writer: &str,
) -> Result<PutOutcome, RemoteError> {
    let mark = super::writer_mark(writer, &md5);
    let tmp = write_temp(dest, data, &mark).map_err(|e| io_error("write", dest, e))?;
    let placed = (|| {
        let _lock = DirLock::take(root).map_err(|e| io_error("lock", root, e))?;
        match precondition {
            Precondition::IfAbsent if dest.exists() => return Err(RemoteError::Conflict),
            Precondition::IfMatch(etag) => {
                let current = blob_at("", dest).map_err(|e| io_error("read", dest, e))?;
                if current.is_none_or(|b| &b.etag != etag) {
                    return Err(RemoteError::Conflict);
                }
            }
            _ => {}
        }
        std::fs::rename(&tmp, dest).map_err(|e| io_error("write", dest, e))
    })();
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")));
    Ok(PutOutcome { etag: hex(&md5) })
}

fn list_blocking(dir: &Path) -> Result<Vec<RemoteBlob>, RemoteError> {
    let mut blobs = Vec::new();
    for entry in ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .follow_links(false)
        .build()
    {
        let entry = entry.map_err(|e| RemoteError::Permanent {
            message: format!("cannot list {}: {e}", dir.display()),
        })?;
        let file_name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_some_and(|t| t.is_file())
            || file_name.contains(TMP_MARKER)
            || (entry.depth() == 1 && file_name == LOCK_FILE)
        {
            continue;
        }
        let Ok(name) = crate::scan::relative(dir, entry.path()) else {
            continue;
        };
        if let Some(blob) =
            blob_at(&name, entry.path()).map_err(|e| io_error("read", entry.path(), e))?
        {
            blobs.push(blob);
        }
    }
    Ok(blobs)
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
        data: Bytes,
        md5: [u8; 16],
        precondition: &Precondition,
        writer: &str,
    ) -> Result<PutOutcome, RemoteError> {
        self.ready()?;
        let dest = self.path_of(name)?;
        let root = self.dir.clone();
        let precondition = precondition.clone();
        let writer = writer.to_string();
        blocking(move || put_blocking(&root, &dest, &data, md5, &precondition, &writer)).await
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        self.ready()?;
        let path = self.path_of(name)?;
        let name = name.to_string();
        blocking(move || blob_at(&name, &path).map_err(|e| io_error("read", &path, e))).await
    }

    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        if !self.dir.exists() && self.create {
            return Ok(Vec::new()); // the built-in mirror before its first push
        }
        self.ready()?;
        let dir = self.dir.clone();
        blocking(move || list_blocking(&dir)).await
    }
}

/// Extended attributes through libc; every failure means "no attribute".
mod xattr {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

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

    pub fn get(path: &Path, name: &str) -> Option<String> {
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let name = std::ffi::CString::new(name).ok()?;
        let mut buf = [0u8; 128];
        // SAFETY: NUL-terminated path and name; the buffer's pointer and length match.
        let n = unsafe {
            #[cfg(target_os = "linux")]
            {
                libc::getxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
            #[cfg(target_os = "macos")]
            {
                libc::getxattr(
                    path.as_ptr(),
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

    #[tokio::test]
    async fn a_configured_directory_that_is_missing_is_an_outage_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nas/devlog");
        let remote = DirectoryRemote::new(&gone, false);
        let e = remote
            .put(
                "a.md",
                Bytes::from_static(b"a"),
                [0; 16],
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
                Bytes::from_static(b"a"),
                [0; 16],
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
            let md5: [u8; 16] = Md5::digest(data).into();
            let remote = &remote;
            async move {
                remote
                    .put("d/n.md", Bytes::from_static(data), md5, &p, "writer-1")
                    .await
            }
        };
        let first = put(b"one", Precondition::IfAbsent).await.unwrap();
        assert_eq!(first.etag, hex(&md5));
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
