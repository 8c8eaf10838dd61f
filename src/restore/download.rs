//! A download checked against what the listing promised: the listed size (a body that runs
//! past it stops at once, before a byte too many reaches the disk) and the listed MD5. The
//! GET's own headers are never trusted alone: whoever answers the GET (a hostile endpoint,
//! a co-writer who replaced the blob since the listing) could make them agree with any bytes.

use crate::remote::retry::RetryPolicy;
use crate::remote::{Remote, RemoteError};
use md5::{Digest, Md5};
use std::io::Write;

/// What the listing said about a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    /// `None`: the listing gave no MD5 (only the size can be checked).
    pub md5: Option<[u8; 16]>,
}

/// Why a download was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The request failed (after the retry policy).
    #[error("cannot download: {0}")]
    Remote(RemoteError),
    /// The bytes are not what the listing promised; nothing may be placed.
    #[error("{0}")]
    Mismatch(String),
    /// The blob is gone since the listing.
    #[error("the blob disappeared from the remote meanwhile")]
    Gone,
}

/// The most a download holds before it writes: a small file is written in one call.
const BUFFER: usize = 64 * 1024;

/// A sink that refuses a byte past `limit` and hashes what it passes on.
struct Bounded<W> {
    inner: W,
    limit: u64,
    written: u64,
    hasher: Md5,
    over: bool,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written.saturating_add(buf.len() as u64) > self.limit {
            self.over = true;
            return Err(std::io::Error::other(format!(
                "the remote sent more than the {} bytes the listing gave",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Download `blob` into `file` (new and empty) under the retry policy (a retry starts the
/// file over) and check it against `expected`. Returns the MD5 of the bytes written (the
/// listed one, or with no listed MD5 the one computed).
pub async fn download_checked(
    remote: &dyn Remote,
    retry: RetryPolicy,
    blob: &str,
    expected: Expected,
    file: &std::fs::File,
) -> Result<[u8; 16], DownloadError> {
    let write_error = |e: std::io::Error| RemoteError::Permanent {
        message: format!("cannot write: {e}"),
    };
    let over = std::sync::atomic::AtomicBool::new(false);
    let tried = std::sync::atomic::AtomicBool::new(false);
    let got = retry
        .run(|| async {
            let mut handle = file;
            // A retry starts the file over; the first try finds it new and empty.
            if tried.swap(true, std::sync::atomic::Ordering::Relaxed) {
                handle.set_len(0).map_err(write_error)?;
                std::io::Seek::rewind(&mut handle).map_err(write_error)?;
            }
            let mut sink = Bounded {
                inner: std::io::BufWriter::with_capacity(
                    // The listed size is the remote's word: any u64 must do.
                    usize::try_from(expected.size).map_or(BUFFER, |size| size.clamp(1, BUFFER)),
                    handle,
                ),
                limit: expected.size,
                written: 0,
                hasher: Md5::new(),
                over: false,
            };
            let found = remote.get(blob, &mut sink).await;
            if sink.over {
                // Not worth a retry: the same answer would come again.
                over.store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(RemoteError::Permanent {
                    message: "too long".into(),
                });
            }
            let Some(_) = found? else { return Ok(None) };
            sink.flush().map_err(write_error)?;
            let md5: [u8; 16] = sink.hasher.finalize().into();
            Ok(Some((sink.written, md5)))
        })
        .await;
    if over.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(DownloadError::Mismatch(format!(
            "the remote sent more than the {} bytes the listing gave; stopped, nothing was placed",
            expected.size
        )));
    }
    let (size, md5) = match got {
        Ok(Some(found)) => found,
        Ok(None) => return Err(DownloadError::Gone),
        Err(e) => return Err(DownloadError::Remote(e)),
    };
    if size != expected.size {
        return Err(DownloadError::Mismatch(format!(
            "the remote sent {size} bytes, the listing gave {}; nothing was placed",
            expected.size
        )));
    }
    if expected.md5.is_some_and(|want| want != md5) {
        return Err(DownloadError::Mismatch(
            "the bytes received do not match the MD5 the listing gave; nothing was placed".into(),
        ));
    }
    Ok(md5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_refuses_the_first_byte_past_its_limit() {
        let mut out = Vec::new();
        let mut sink = Bounded {
            inner: &mut out,
            limit: 4,
            written: 0,
            hasher: Md5::new(),
            over: false,
        };
        sink.write_all(b"abc").unwrap();
        assert!(sink.write_all(b"de").is_err());
        assert!(sink.over);
        assert_eq!(out, b"abc");
    }

    /// The write buffer is sized from the listing: a hostile size is refused, not a panic.
    #[tokio::test]
    async fn any_listed_size_is_checked_without_a_panic() {
        let remote = crate::remote::memory::MemoryRemote::new();
        let content = crate::remote::content::Content::from_bytes(b"abc".to_vec().into());
        remote
            .put("a.md", &content, &crate::remote::Precondition::None, "w")
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        for size in [0, 3, u64::MAX] {
            let file = std::fs::File::create(dir.path().join(format!("f{size}"))).unwrap();
            let expected = Expected { size, md5: None };
            let got =
                download_checked(&remote, RetryPolicy::default(), "a.md", expected, &file).await;
            match size {
                3 => assert!(got.is_ok(), "{got:?}"),
                _ => assert!(matches!(got, Err(DownloadError::Mismatch(_))), "{got:?}"),
            }
        }
    }
}
