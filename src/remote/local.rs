//! The directory remote (`file:///path`): the embedded default mirror, and a real backend
//! for a NAS or a synced folder.
//!
//! Writes are atomic: the bytes go to a temporary file in the target directory, are
//! fsynced, then renamed (or hard-linked, for create-only writes, so an existing file is
//! never replaced), and the directory is fsynced. A crash leaves either the old copy or
//! the new one, never half of one. The ETag is the content's MD5 in hex.

use super::{Precondition, PutOutcome, Remote, RemoteBlob, RemoteError};
use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files carry this marker; listings skip them.
const TMP_MARKER: &str = ".devlogd-tmp-";

pub struct DirectoryRemote {
    dir: PathBuf,
}

impl DirectoryRemote {
    pub fn new(dir: &Path) -> Self {
        DirectoryRemote {
            dir: dir.to_path_buf(),
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
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> RemoteError {
    RemoteError::Permanent {
        message: format!("cannot {what} {}: {e}", path.display()),
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

fn write_temp(dest: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
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
    f.sync_all()?;
    Ok(tmp)
}

fn put_blocking(
    dest: &Path,
    data: &[u8],
    md5: [u8; 16],
    precondition: &Precondition,
) -> Result<PutOutcome, RemoteError> {
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
    let tmp = write_temp(dest, data).map_err(|e| io_error("write", dest, e))?;
    let placed = if *precondition == Precondition::IfAbsent {
        // link() fails if the name exists: create-only without a race.
        let r = std::fs::hard_link(&tmp, dest);
        let _ = std::fs::remove_file(&tmp);
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RemoteError::Conflict);
            }
            other => other,
        }
    } else {
        std::fs::rename(&tmp, dest).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    };
    placed.map_err(|e| io_error("write", dest, e))?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")));
    Ok(PutOutcome { etag: hex(&md5) })
}

fn list_blocking(dir: &Path) -> Result<Vec<RemoteBlob>, RemoteError> {
    let mut blobs = Vec::new();
    if !dir.exists() {
        return Ok(blobs);
    }
    for entry in ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .follow_links(false)
        .build()
    {
        let entry = entry.map_err(|e| RemoteError::Permanent {
            message: format!("cannot list {}: {e}", dir.display()),
        })?;
        if !entry.file_type().is_some_and(|t| t.is_file())
            || entry.file_name().to_string_lossy().contains(TMP_MARKER)
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
    ) -> Result<PutOutcome, RemoteError> {
        let dest = self.path_of(name)?;
        let precondition = precondition.clone();
        blocking(move || put_blocking(&dest, &data, md5, &precondition)).await
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        let path = self.path_of(name)?;
        let name = name.to_string();
        blocking(move || blob_at(&name, &path).map_err(|e| io_error("read", &path, e))).await
    }

    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        let dir = self.dir.clone();
        blocking(move || list_blocking(&dir)).await
    }
}
