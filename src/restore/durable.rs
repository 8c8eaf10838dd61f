//! Durability before a name: a downloaded file's bytes must be on disk before it is renamed
//! into place, or a power cut can leave an empty file under the final name (which the next
//! restore would keep as "local"). One `fdatasync` per file costs a journal commit each
//! (a quarter of a 10,000-file restore's time); instead the downloads share a group commit:
//! each takes a ticket once its bytes are written, and one `syncfs` of the destination's file
//! system, started after a ticket was taken, makes that file durable. Whoever finds the last
//! flush too old runs the next one; everyone who waited meanwhile is covered by it.
//!
//! Flushes back to back covered under three files each (3,846 `syncfs` for 10,000 files, a
//! fifth of a pull's CPU): a flush now starts no sooner than [`FLUSH_GAP`] after the one
//! before, so each covers what came in meanwhile. The first flush does not wait: one file
//! pulled alone is not held back.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The least time from one flush's start to the next one's. Short beside a pass's time, and
/// the downloads go on meanwhile (a finished file waits for its flush outside its slot).
pub const FLUSH_GAP: Duration = Duration::from_millis(20);

/// The flushes so far.
#[derive(Default)]
struct Flushed {
    /// The highest ticket a completed flush covers.
    covers: u64,
    /// When the last flush started.
    started: Option<Instant>,
}

/// The group commit of one restore's destination.
pub struct Barrier {
    /// The destination directory (its file system is what `syncfs` flushes).
    fd: Arc<OwnedFd>,
    /// Tickets handed out: one per file whose bytes are written.
    tickets: AtomicU64,
    /// What the completed flushes cover; held while a flush waits for its turn and runs.
    flushed: tokio::sync::Mutex<Flushed>,
}

impl Barrier {
    pub fn new(dest: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Barrier> {
        Ok(Barrier {
            fd: Arc::new(dest.try_clone_to_owned()?),
            tickets: AtomicU64::new(0),
            flushed: tokio::sync::Mutex::new(Flushed::default()),
        })
    }

    /// Returns once every byte written to `file` before the call is on disk.
    pub async fn durable(&self, file: &std::fs::File) -> std::io::Result<()> {
        if !cfg!(target_os = "linux") {
            // No syncfs: one flush per file.
            let file = file.try_clone()?;
            return tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(std::io::Error::other)?;
        }
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = self.flushed.lock().await;
        if flushed.covers >= ticket {
            return Ok(());
        }
        if let Some(last) = flushed.started {
            tokio::time::sleep_until(last + FLUSH_GAP).await;
        }
        // Every ticket taken by now had its bytes written before it was taken.
        let covers = self.tickets.load(Ordering::SeqCst);
        flushed.started = Some(Instant::now());
        let fd = self.fd.clone();
        tokio::task::spawn_blocking(move || flush(&fd))
            .await
            .map_err(std::io::Error::other)??;
        flushed.covers = covers;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn flush(fd: &OwnedFd) -> std::io::Result<()> {
    rustix::fs::syncfs(fd).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn flush(_fd: &OwnedFd) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_is_covered_and_flushes_are_shared() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let handle = std::fs::File::open(dir.path()).expect("the directory");
        let barrier = Arc::new(Barrier::new(std::os::fd::AsFd::as_fd(&handle)).expect("barrier"));
        let mut tasks = Vec::new();
        for i in 0..64 {
            let barrier = barrier.clone();
            let path = dir.path().join(format!("f{i}"));
            tasks.push(tokio::spawn(async move {
                std::fs::write(&path, b"bytes").expect("write");
                let file = std::fs::File::open(&path).expect("open");
                barrier.durable(&file).await
            }));
        }
        for t in tasks {
            t.await.expect("task").expect("durable");
        }
        let flushed = barrier.flushed.lock().await.covers;
        if cfg!(target_os = "linux") {
            assert_eq!(flushed, 64, "the last flush covers every ticket");
        }
    }
}
