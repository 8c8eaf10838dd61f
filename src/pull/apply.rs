//! What the pull pass does to one local path: download a remote version into place (new,
//! over an unchanged file, or beside it as a conflict file) and delete a file the remote
//! deleted. Every change is made only if the local file is still what the decision saw:
//! a file written meanwhile is the user's and stays.

use crate::fsutil::Beneath;
use crate::remote::retry::RetryPolicy;
use crate::remote::{Remote, RemoteBlob, RemoteError};
use crate::restore::durable::Barrier;
use crate::restore::place::{self, Placed};
use crate::restore::{Expected, download, join, split, temp};
use crate::scan::LocalFile;
use std::io::ErrorKind;

/// What became of one download.
#[derive(Debug)]
pub enum Fetched {
    /// In place under its name, with the stat it has now and its MD5.
    Placed {
        meta: std::fs::Metadata,
        md5: [u8; 16],
    },
    /// The local file changed (or appeared) after the decision: left as it is.
    LocalChanged,
    /// The blob changed (or went) between the listing and the download: the next pass
    /// looks again.
    RemoteChanged,
    /// The remote could not be reached: the pass stops.
    Unreachable(String),
    Failed(String),
}

/// Download `blob` to `rel` below `dest`. `over`: the local file the decision saw there
/// (its content is the base, already in the remote's history), replaced only while it is
/// still that file; `None`: only a new file is made, never over anything.
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    remote: &dyn Remote,
    retry: RetryPolicy,
    downloads: &tokio::sync::Semaphore,
    durable: &Barrier,
    dest: &Beneath,
    blob: &RemoteBlob,
    rel: &str,
    over: Option<&LocalFile>,
    stamp: &str,
) -> Fetched {
    let (parent_rel, name) = split(rel);
    let parent = match dest.open_dir(parent_rel, true) {
        Ok(p) => p,
        Err(e) => return Fetched::Failed(format!("cannot create its directory: {e}")),
    };
    // The file as the decision saw it; anything else there now is a newer local edit.
    let checked = match over {
        None => None,
        Some(seen) => match place::seen_now(&parent, name) {
            Ok(Some(now)) if now.describes(seen) => Some(now),
            Ok(_) => return Fetched::LocalChanged,
            Err(e) => return Fetched::Failed(format!("cannot read the local file: {e}")),
        },
    };
    let (tmp_name, file) = match temp::create(&parent, ".devlogd-pull-") {
        Ok(created) => created,
        Err(e) => return Fetched::Failed(format!("cannot write: {e}")),
    };
    // Unlinked on every way out but the rename (an error, or the pass dropped).
    let mut tmp = temp::TempName {
        dir: &parent,
        name: &tmp_name,
        placed: false,
    };
    let expected = Expected {
        size: blob.size,
        md5: blob.md5,
    };
    // Held while the bytes come in: the flush after it waits outside the limit, so a slow
    // flush never stalls the downloads behind it.
    let Ok(download_slot) = downloads.acquire().await else {
        return Fetched::Failed("the pull was stopped".into());
    };
    let downloaded = download::download_checked(remote, retry, &blob.name, expected, &file).await;
    drop(download_slot);
    let md5 = match downloaded {
        Ok(md5) => md5,
        Err(download::DownloadError::Remote(RemoteError::Unreachable { message })) => {
            return Fetched::Unreachable(message);
        }
        Err(download::DownloadError::Gone) => return Fetched::RemoteChanged,
        // Bytes that do not match the listing: another version written since (its ETag
        // moved on), or a blob that lies about itself (reported, never placed).
        Err(e @ download::DownloadError::Mismatch(_)) => {
            return match remote.head(&blob.name).await {
                Ok(Some(now)) if now.etag != blob.etag => Fetched::RemoteChanged,
                Ok(None) => Fetched::RemoteChanged,
                _ => Fetched::Failed(e.to_string()),
            };
        }
        Err(e) => return Fetched::Failed(e.to_string()),
    };
    if let Err(e) = durable.durable(&file).await {
        return Fetched::Failed(format!("cannot write: {e}"));
    }
    match place::place(&parent, &tmp_name, name, checked, stamp) {
        Ok(Placed::New) => {}
        // The file replaced held the base, which the remote keeps: no copy is needed.
        Ok(Placed::Replaced { kept }) => {
            let _ = parent.unlink_here(&kept);
        }
        Ok(Placed::LocalChanged) => return Fetched::LocalChanged,
        Ok(Placed::LocalMovedAside { kept }) => {
            return Fetched::Failed(format!(
                "the local file changed while it was being replaced; it is kept as {}",
                join(parent_rel, &kept)
            ));
        }
        Err(e) => return Fetched::Failed(format!("cannot write: {e}")),
    }
    tmp.placed = true;
    match file.metadata() {
        Ok(meta) => Fetched::Placed { meta, md5 },
        Err(e) => Fetched::Failed(format!("cannot read back: {e}")),
    }
}

/// What became of one local delete.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// Already gone.
    Gone,
    /// Written after the decision: kept.
    LocalChanged,
}

/// Delete `rel` if it is still the file the decision saw: moved to a temporary name
/// first, checked there, then unlinked (or put back when it changed in between).
pub fn delete(dest: &Beneath, rel: &str, seen: &LocalFile) -> std::io::Result<Deleted> {
    let (parent_rel, name) = split(rel);
    let parent = match dest.open_dir(parent_rel, false) {
        Ok(p) => p,
        Err(e) if crate::fsutil::is_gone(&e) => return Ok(Deleted::Gone),
        Err(e) => return Err(e),
    };
    let checked = match place::seen_now(&parent, name)? {
        None => return Ok(Deleted::Gone),
        Some(now) if !now.describes(seen) => return Ok(Deleted::LocalChanged),
        Some(now) => now,
    };
    let aside = loop {
        let aside = format!(".devlogd-delete-{}", place::random_token(8));
        match place::rename_new(&parent, name, &aside) {
            Ok(()) => break aside,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Deleted::Gone),
            Err(e) => return Err(e),
        }
    };
    match place::seen_now(&parent, &aside)? {
        // The rename moved its ctime: the inode, size and mtime say it is the same file.
        Some(moved) if moved.same_content(&checked) => {
            parent.unlink_here(&aside)?;
            Ok(Deleted::Deleted)
        }
        _ => {
            // Written between the check and the move: put back (or, if a new file took the
            // name meanwhile, left under the temporary name for the user, said by the error).
            place::rename_new(&parent, &aside, name).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "changed while it was being deleted; kept as {}",
                        join(parent_rel, &aside)
                    ),
                )
            })?;
            Ok(Deleted::LocalChanged)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(dir: &tempfile::TempDir, rel: &str) -> LocalFile {
        let meta = std::fs::symlink_metadata(dir.path().join(rel)).unwrap();
        LocalFile::from_meta(rel.to_string(), &meta)
    }

    #[test]
    fn a_file_is_deleted_only_while_it_is_what_was_decided_on() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d/a.md"), "old").unwrap();
        std::fs::write(tmp.path().join("d/b.md"), "old").unwrap();
        let dest = Beneath::open(tmp.path()).unwrap();
        let a = seen(&tmp, "d/a.md");
        let b = seen(&tmp, "d/b.md");
        std::fs::write(tmp.path().join("d/b.md"), "the user's new words").unwrap();
        assert_eq!(delete(&dest, "d/a.md", &a).unwrap(), Deleted::Deleted);
        assert_eq!(delete(&dest, "d/b.md", &b).unwrap(), Deleted::LocalChanged);
        assert_eq!(delete(&dest, "d/a.md", &a).unwrap(), Deleted::Gone);
        assert_eq!(delete(&dest, "gone/x.md", &a).unwrap(), Deleted::Gone);
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["b.md".to_string()]);
        assert_eq!(
            std::fs::read(tmp.path().join("d/b.md")).unwrap(),
            b"the user's new words"
        );
    }
}
