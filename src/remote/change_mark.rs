//! The remote's change mark, so an idle two-way poll costs one small request instead of a
//! listing: every push in two-way mode that changed the remote (uploaded or deleted) writes
//! the small blob [`MARK`] *after* its changes, which gives it a new ETag. A poller reads the
//! mark's ETag (one Get Blob Properties) and lists only when it moved since the ETag it read
//! before its last full pull. The mark lives in the history area, which no listing shows and
//! no local path maps to.
//!
//! A writer that stopped between its changes and the mark, or a backup-mode writer on the
//! same prefix, moves no mark: the daemon also lists in full every [`FULL_PULL_EVERY`].

use crate::remote::content::Content;
use crate::remote::{Precondition, Remote, RemoteError};
use std::time::Duration;

/// Below the remote's prefix, inside the history area (kept out of every listing; not a
/// version name, so history and prune pass it by).
pub const MARK: &str = ".devlog-history/.changed";

/// A full pull at least this often, whatever the mark says.
pub const FULL_PULL_EVERY: Duration = Duration::from_secs(3600);

/// The mark as last read: its ETag, or `None` when no writer has set it yet.
pub type Generation = Option<String>;

/// The mark's ETag now (one small request).
pub async fn read(remote: &dyn Remote) -> Result<Generation, RemoteError> {
    Ok(remote.head(MARK).await?.map(|b| b.etag))
}

/// Move the mark after this writer's changes. With `seen` (the mark as read before the
/// last full pull), only if no one else moved it since, and then the new ETag is returned:
/// this writer has seen everything up to it. Otherwise (someone else moved it, or no
/// `seen`) it is moved anyway, so pollers look, and `None` says a full pull is due here.
pub async fn bump(
    remote: &dyn Remote,
    writer: &str,
    seen: Option<&Generation>,
) -> Result<Option<String>, RemoteError> {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    // Bytes never written before: where the ETag is the content's hash (a directory
    // remote), the same bytes twice would leave it where it was and hide the second move.
    let nonce: u64 = rand::random();
    let content = Content::from_bytes(format!("{writer} {stamp} {nonce:016x}\n").into());
    if let Some(seen) = seen {
        let precondition = match seen {
            Some(etag) => Precondition::IfMatch(etag.clone()),
            None => Precondition::IfAbsent,
        };
        match remote.put(MARK, &content, &precondition, writer).await {
            Ok(put) => return Ok(Some(put.etag)),
            Err(RemoteError::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    remote
        .put(MARK, &content, &Precondition::None, writer)
        .await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::memory::MemoryRemote;

    #[tokio::test]
    async fn the_mark_moves_with_every_change_and_says_when_someone_else_moved_it() {
        let remote = MemoryRemote::new();
        assert_eq!(read(&remote).await.unwrap(), None);
        // The first writer, having seen no mark: it holds the first one.
        let first = bump(&remote, "a", Some(&None)).await.unwrap();
        assert!(first.is_some());
        assert_eq!(read(&remote).await.unwrap(), first);
        // B moves it (unconditionally, as a command-line push does).
        assert_eq!(bump(&remote, "b", None).await.unwrap(), None);
        let moved = read(&remote).await.unwrap();
        assert_ne!(moved, first);
        // A's next push, still holding the first mark: moved anyway, but A learns it must list.
        assert_eq!(bump(&remote, "a", Some(&first)).await.unwrap(), None);
        assert_ne!(read(&remote).await.unwrap(), moved);
        // The mark is never part of the journal's listing.
        assert!(remote.list().await.unwrap().is_empty());
    }

    /// A directory remote's ETag is its content's MD5: two moves by one writer within one
    /// second once wrote the same bytes, so the second left the ETag where it was and a
    /// poller that had read it never listed the changes before it.
    #[tokio::test]
    async fn every_move_gives_a_new_etag_even_where_the_etag_is_the_content_hash() {
        let dir = tempfile::tempdir().unwrap();
        let remote = crate::remote::directory::DirectoryRemote::new(dir.path(), true);
        let first = bump(&remote, "a", Some(&None)).await.unwrap();
        assert!(first.is_some());
        let second = bump(&remote, "a", Some(&first)).await.unwrap();
        assert!(second.is_some(), "it held the mark it moved");
        assert_ne!(second, first, "the second move gave the mark a new ETag");
        assert_eq!(read(&remote).await.unwrap(), second);
    }
}
