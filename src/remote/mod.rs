//! The remote interface: one sync engine, many backends (rclone's model).
//!
//! A [`Remote`] stores blobs by name (the `/`-separated relative path). It does single
//! conditional writes and listings and says, through [`RemoteError`], whether a failure
//! is worth retrying; the push pipeline owns retries, back-off and conflict policy.
//! What only some backends can do (an adaptive request limit, a SAS, a container created
//! on the way) is asked for through [`Remote::features`]. Azure lives in [`azure`]; the
//! rest of this module is shared by every backend.

pub mod azure;
pub mod change_mark;
pub mod concurrency;
pub mod content;
pub mod crypt;
pub mod directory;
pub mod encrypted;
mod features;
pub mod history_name;
pub mod limit;
pub mod memory;
pub mod retry;
pub mod timeouts;
pub mod tls;

/// Azure's credentials, where the front ends and tests have always found them.
pub use azure::credential;
pub use features::{Created, Features};

use async_trait::async_trait;
use content::{Content, ContentError};
use std::time::Duration;

/// A blob as the remote lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBlob {
    /// Name below the configured prefix.
    pub name: String,
    pub size: u64,
    /// Content-MD5, when the remote has one.
    pub md5: Option<[u8; 16]>,
    pub etag: String,
    /// The writer id devlogd stored with the blob (metadata or xattr), if the content is
    /// still what that writer wrote: a blob with our own id is ours even when the index
    /// missed recording it (a crash between upload and commit).
    pub writer: Option<String>,
    /// The host name its writer stored with it (sanitised, [`crate::redact::safe_host`]),
    /// while the writer mark holds: a claim for people (conflict file names), never an
    /// identity.
    pub host: Option<String>,
    /// When this content was written (unix ns): devlogd's own record of its write
    /// (metadata; the directory remote's mtime), else the service's Last-Modified. A copy
    /// into the history area keeps the original's. A writer's claim: any writer sets it.
    pub written_ns: Option<i128>,
    /// When the service stored this content (unix ns): Azure's Last-Modified, the directory
    /// remote's ctime. No writer can set it, so history's times come from here (for a copy
    /// in the history area, when it was copied: when the version was replaced).
    pub service_ns: Option<i128>,
    /// The stored bytes no longer match the MD5 they were written with (the directory
    /// remote keeps that MD5 in the writer mark): the copy is damaged, not another version.
    pub corrupt: bool,
    /// An opaque value a layer above stored with the blob ([`Put::seal`]): the encrypted
    /// remote's sealed metadata (the plaintext's MD5 and host). Kept by a copy into the
    /// history area.
    pub sealed: Option<String>,
}

/// Refuse a blob name a request URL or a path must never be built from: empty, with a
/// leading `/`, an empty, `.` or `..` segment, a segment ending in `.` or a `\`. A URL
/// normalises `.` and `..` (and a path walks them), and Azure drops a segment's trailing
/// dots and reads `\` as `/`, so a listed name like `.devlog-history/../../other/x` would
/// reach a blob outside the area it was listed in, in another container even. No name
/// devlogd uploads has any of these ([`crate::blobname`]). Every remote checks every name
/// it is given, whoever the caller: names come down from the remote too.
pub fn check_name(name: &str) -> Result<(), RemoteError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name
            .split('/')
            .any(|seg| seg.is_empty() || seg.ends_with('.'));
    if bad {
        return Err(RemoteError::Permanent {
            message: format!(
                "refused the blob name \"{}\": with an empty, \".\" or \"..\" segment (or one ending in \".\", or a \"\\\") it could reach another blob",
                crate::redact::printable(name)
            ),
        });
    }
    Ok(())
}

/// What to tell a person whose clock is `off` (this machine's minus the service's) from the
/// service's.
pub fn clock_skew_message(off: time::Duration) -> String {
    let minutes = (off.whole_seconds().unsigned_abs() + 30) / 60;
    let way = if off.is_positive() { "ahead" } else { "behind" };
    format!(
        "this machine's clock is {minutes} minutes off the service's ({way}); correct it (timedatectl / NTP)"
    )
}

/// Whether a refusal's message is [`clock_skew_message`]'s: the clock, not the key.
pub fn is_clock_skew(message: &str) -> bool {
    message.starts_with("this machine's clock is ")
}

/// An HTTP date (`Date`, `Last-Modified`: RFC 1123, which RFC 2822 covers).
pub fn parse_http_date(value: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc2822).ok()
}

/// The mark stored with a blob: our writer id, the MD5 of what we wrote and a tag of the
/// blob name it was written under. A blob counts as ours only while its content still has
/// that MD5 (so a later in-place change by any other tool, which may keep metadata or
/// extended attributes, is never taken for ours) and only under that name (so a name the
/// service maps onto another is never taken for our own earlier write there).
pub fn writer_mark(writer: &str, md5: &[u8; 16], name: &str) -> String {
    format!("{writer}:{}:{}", hex(md5), name_tag(name))
}

/// The writer id in `mark`, if the blob at `name` still has the `md5` it was written with.
/// Marks from before names were tagged (`writer:md5`) name no writer.
pub fn writer_from_mark(mark: &str, md5: Option<[u8; 16]>, name: &str) -> Option<String> {
    // A version in the history area carries the mark of the name it was written under.
    let name = history_name::original_path(name).unwrap_or(name);
    let mut parts = mark.split(':');
    let (writer, md5_hex, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let current = md5?;
    (parts.next().is_none() && md5_hex == hex(&current) && tag == name_tag(name))
        .then(|| writer.to_string())
}

/// The MD5 a blob at `name` was written with, from its mark (whatever the bytes are now),
/// if the mark was written under that name.
pub fn marked_md5(mark: &str, name: &str) -> Option<[u8; 16]> {
    let name = history_name::original_path(name).unwrap_or(name);
    let mut parts = mark.split(':');
    let (_writer, md5_hex, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || tag != name_tag(name) || md5_hex.len() != 32 {
        return None;
    }
    let mut md5 = [0u8; 16];
    for (i, byte) in md5.iter_mut().enumerate() {
        *byte = u8::from_str_radix(md5_hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(md5)
}

/// A short tag of a blob name (ASCII, so it fits in blob metadata).
fn name_tag(name: &str) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(name.as_bytes()).into())[..16].to_string()
}

/// Lower-case hex of an MD5.
pub fn hex(md5: &[u8; 16]) -> String {
    crate::fsutil::hex(md5)
}

/// The write precondition that keeps us from overwriting another writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `If-None-Match: *`: only create.
    IfAbsent,
    /// `If-Match: etag`: only replace the version we last wrote (or were told to replace).
    IfMatch(String),
    /// Unconditional (the `overwrite` conflict policy after a conflict).
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_a_url_or_path_would_normalise_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            ".devlog-history/../../other/x",
            "a//b",
            "a/./b",
            "a/",
            "..",
            "a/..\u{1b}[2J/..",
            ".devlog-history\\..\\..\\other\\x",
            "notes./a.md",
            ".../x",
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(matches!(e, RemoteError::Permanent { .. }), "{bad:?}");
            assert!(!e.to_string().contains('\u{1b}'), "escaped: {e}");
        }
        assert!(
            check_name(".devlog-history/../../other/x")
                .unwrap_err()
                .to_string()
                .contains("\".devlog-history/../../other/x\"")
        );
        for good in [
            "a.md",
            "notes/a b.md",
            ".devlog-history/a.md/v-e1-w",
            "a/..b/.c",
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn the_md5_written_is_read_from_the_mark_whatever_the_bytes_are_now() {
        let md5 = [7u8; 16];
        let mark = writer_mark("w1", &md5, "notes/today.md");
        assert_eq!(marked_md5(&mark, "notes/today.md"), Some(md5));
        assert_eq!(marked_md5(&mark, "notes/other.md"), None);
        assert_eq!(marked_md5("w1:zz:tag", "notes/today.md"), None);
        let kept = history_name::version_name("notes/today.md", "e1", "w2");
        assert_eq!(
            marked_md5(&mark, &kept),
            Some(md5),
            "a kept copy keeps the mark"
        );
    }

    #[test]
    fn a_mark_names_its_writer_only_while_the_content_and_name_are_unchanged() {
        let md5 = [7u8; 16];
        let mark = writer_mark("w1", &md5, "notes/today.md");
        assert_eq!(
            writer_from_mark(&mark, Some(md5), "notes/today.md"),
            Some("w1".into())
        );
        assert_eq!(
            writer_from_mark(&mark, Some([8; 16]), "notes/today.md"),
            None
        );
        assert_eq!(writer_from_mark(&mark, None, "notes/today.md"), None);
        // The same mark on another name (a name the service mapped onto this one).
        assert_eq!(writer_from_mark(&mark, Some(md5), "notes/other.md"), None);
        assert_eq!(
            writer_from_mark("garbage", Some(md5), "notes/today.md"),
            None
        );
        let untagged = format!("w1:{}", hex(&md5));
        assert_eq!(
            writer_from_mark(&untagged, Some(md5), "notes/today.md"),
            None
        );
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// Worth retrying: timeouts, connection failures, 408/429/5xx.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The service could not be reached at all (connection refused, DNS, timeout). Retried
    /// like `Transient`; when retries run out the whole run stops, since every other
    /// request would fail the same way.
    #[error("cannot reach the remote: {message}")]
    Unreachable { message: String },
    /// The precondition failed: another writer changed (or created) the blob.
    #[error("the blob was changed by another writer")]
    Conflict,
    /// The stored copy's bytes no longer match the MD5 written with them: damaged at rest
    /// (a flipped bit, a broken disk), never another writer's version. Not worth retrying;
    /// the next push of the file repairs it.
    #[error(
        "the stored copy of {} is damaged: its bytes no longer match the MD5 written with it",
        crate::redact::printable(name)
    )]
    Corrupt { name: String },
    /// The service refused the credentials (401/403).
    #[error("{message}")]
    Auth { message: String },
    /// The encryption key cannot be unlocked: no passphrase, a wrong one, a damaged or
    /// replaced key blob. Nothing was read or written with it.
    #[error("{message}")]
    Locked { message: String },
    /// Anything else: a bad request, a missing container that cannot be created, local I/O.
    #[error("{message}")]
    Permanent { message: String },
    /// The local file changed while it was read for the upload; nothing was stored (a
    /// block upload is not committed), and the file stays dirty.
    #[error("the file changed while it was uploaded; it will be pushed again")]
    SourceChanged,
    /// The local file could not be read during the upload.
    #[error("cannot read the local file: {error}")]
    SourceRead {
        error: String,
        /// The error can clear on its own (EMFILE, ENOMEM, …).
        transient: bool,
    },
}

impl From<ContentError> for RemoteError {
    fn from(e: ContentError) -> Self {
        match e {
            ContentError::Changed => RemoteError::SourceChanged,
            ContentError::Read(e) => RemoteError::SourceRead {
                transient: crate::fsutil::is_transient_io(&e),
                error: e.to_string(),
            },
            ContentError::Write(e) => RemoteError::Permanent {
                message: format!("cannot write: {e}"),
            },
        }
    }
}

impl RemoteError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Transient { .. }
                | RemoteError::Unreachable { .. }
                | RemoteError::SourceRead {
                    transient: true,
                    ..
                }
        )
    }
}

/// What a probe of the remote found (it answered, with these credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// False when the service says the container does not exist (a push creates it).
    pub container_exists: bool,
}

/// What a successful write returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub etag: String,
    /// MD5 of the content stored (what the service verified and keeps as Content-MD5).
    pub md5: [u8; 16],
}

/// Told of each retry made inside one call ([`Remote::put_observed`]).
pub type OnRetry<'a> = &'a (dyn Fn(&RemoteError) + Send + Sync);

/// Where a download's bytes go.
pub type Sink<'a> = &'a mut (dyn std::io::Write + Send);

/// One conditional write: `content` at `name` if `precondition` holds, with `writer` in
/// the blob's writer mark, telling `on_retry` of each retry made inside the call.
pub struct Put<'a> {
    pub name: &'a str,
    pub content: &'a Content,
    pub precondition: &'a Precondition,
    pub writer: &'a str,
    /// This machine's host name, stored with the blob for people to read (empty: none).
    pub host: &'a str,
    pub on_retry: OnRetry<'a>,
    /// Called once the whole content has been read (so after a large file's last block),
    /// before the write is committed: a value to store with the blob as
    /// [`RemoteBlob::sealed`]. `None`: nothing stored.
    pub seal: Option<Seal>,
}

/// Gives [`Put::seal`]'s value once the content has been read whole.
pub type Seal = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Where [`Remote::list_sending`] sends the listing's blobs as they come.
pub type ListingSender = tokio::sync::mpsc::UnboundedSender<Vec<RemoteBlob>>;

/// The core a backend implements; what only some backends can do is in [`Features`].
#[async_trait]
pub trait Remote: Send + Sync {
    /// The remote as shown to people: a URL or path, never a secret.
    fn describe(&self) -> String;

    /// Where credentials came from (`AZURE_STORAGE_SAS_TOKEN`, …), for messages.
    fn credential_source(&self) -> String;

    /// The prefix every blob name gets (it counts towards the service's name limits).
    fn name_prefix(&self) -> String {
        String::new()
    }

    /// The optional capabilities this remote has; none by default.
    fn features(&self) -> Features<'_> {
        Features::default()
    }

    /// Write `put.content` at `put.name` if `put.precondition` holds, with `put.writer` in
    /// the writer mark. The service verifies every byte it receives against an MD5 sent
    /// with it, and the blob's stored Content-MD5 is the MD5 of the whole content. Nothing
    /// is stored if the file changes while it is read ([`RemoteError::SourceChanged`]). A
    /// remote that retries inside the call (a large file's blocks one by one, so a 1 GiB
    /// upload does not start over) tells `put.on_retry` of each retry as it happens:
    /// without that, a hung service would show only once a block gave up.
    async fn put_observed(&self, put: Put<'_>) -> Result<PutOutcome, RemoteError>;

    /// [`put_observed`](Self::put_observed) with no one to tell of retries (backends do not
    /// override it).
    async fn put(
        &self,
        name: &str,
        content: &Content,
        precondition: &Precondition,
        writer: &str,
    ) -> Result<PutOutcome, RemoteError> {
        let on_retry: OnRetry<'_> = &|_| {};
        self.put_observed(Put {
            name,
            content,
            precondition,
            writer,
            host: "",
            on_retry,
            seal: None,
        })
        .await
    }
    /// Properties of one blob, `None` when it does not exist.
    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError>;

    /// Every blob below the prefix: the current view, without the history area.
    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError>;

    /// [`Remote::list`], also sending the blobs to `early` in batches as the pages come in,
    /// in listing order (by name), so a pull can start downloading before the listing ends.
    /// A retried listing sends its batches again. By default nothing is sent early.
    async fn list_sending(&self, early: &ListingSender) -> Result<Vec<RemoteBlob>, RemoteError> {
        let _ = early;
        self.list().await
    }

    /// Every blob in the history area ([`history_name::HISTORY_DIR`]), or only the
    /// versions of `path`. Names are full (`.devlog-history/<path>/<version>`).
    async fn list_history(&self, path: Option<&str>) -> Result<Vec<RemoteBlob>, RemoteError>;

    /// Download `name` into `sink`, verifying every byte against the blob's Content-MD5
    /// (a mismatch is an error, and whatever was written to `sink` must be discarded).
    /// Returns the blob as read; `Ok(None)` when it does not exist.
    async fn get(&self, name: &str, sink: Sink<'_>) -> Result<Option<RemoteBlob>, RemoteError>;

    /// Keep the version of `name` whose ETag is `etag` in the history area as
    /// `kept_as` (see [`history_name::version_name`]), server-side: exactly that
    /// version or nothing ([`RemoteError::Conflict`] when `name` is now another version
    /// or gone). Called before every replace or delete of a blob devlogd knew.
    async fn preserve(&self, name: &str, etag: &str, kept_as: &str) -> Result<(), RemoteError>;

    /// Remove `name` if `precondition` holds ([`RemoteError::Conflict`] otherwise); a
    /// blob that is already gone is not an error.
    async fn delete(&self, name: &str, precondition: &Precondition) -> Result<(), RemoteError>;

    /// Before a command works with the remote: an encrypted remote unlocks its key now
    /// (with `create`, making one for a prefix with nothing in it), so a missing or wrong
    /// passphrase stops the command before anything is read or written
    /// ([`RemoteError::Locked`]); a plain remote refuses a prefix that holds an encrypted
    /// journal. A remote that cannot be reached gives no answer here: the command's own
    /// requests report it.
    async fn ready(&self, create: bool) -> Result<(), RemoteError> {
        let _ = create;
        match self.head(encrypted::KEY_NAME).await {
            Ok(Some(_)) => Err(RemoteError::Permanent {
                message: format!(
                    "{} holds an encrypted journal (it has an encryption key, {}): set [encryption] enabled = true and give its passphrase (DEVLOG_PASSPHRASE)",
                    self.describe(),
                    encrypted::KEY_NAME
                ),
            }),
            _ => Ok(()),
        }
    }

    /// One cheap request that needs the credentials (a listing of at most one page):
    /// whether the remote answers and accepts them. Writes nothing.
    async fn probe(&self) -> Result<Probe, RemoteError> {
        self.list().await.map(|_| Probe {
            container_exists: true,
        })
    }

    /// The service's clock now, as an answer of the service shows it (Azure: a response's
    /// `Date`; the directory remote: the ctime the file system gives a file it creates);
    /// `None` where there is no clock but this machine's. Ages in the history are measured
    /// on it.
    async fn service_now(&self) -> Result<Option<time::OffsetDateTime>, RemoteError> {
        Ok(None)
    }
}
