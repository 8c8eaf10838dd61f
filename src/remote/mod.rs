//! The remote interface: one sync engine, many backends (rclone's model).
//!
//! A [`Remote`] stores blobs by name (the `/`-separated relative path). It does single
//! conditional writes and listings and says, through [`RemoteError`], whether a failure
//! is worth retrying; the push pipeline owns retries, back-off and conflict policy.

pub mod azure;
pub mod credential;
pub mod local;
pub mod shared_key;

use crate::config::{Config, RemoteConfig};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
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
}

/// The mark stored with a blob: our writer id and the MD5 of what we wrote. A blob counts
/// as ours only while its content still has that MD5, so a later in-place change by any
/// other tool (which may keep metadata or extended attributes) is never taken for ours.
pub fn writer_mark(writer: &str, md5: &[u8; 16]) -> String {
    let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
    format!("{writer}:{hex}")
}

/// The writer id in `mark`, if the blob's current `md5` is still the one it was written with.
pub fn writer_from_mark(mark: &str, md5: Option<[u8; 16]>) -> Option<String> {
    let (writer, hex) = mark.split_once(':')?;
    let current = md5?;
    let current_hex: String = current.iter().map(|b| format!("{b:02x}")).collect();
    (hex == current_hex).then(|| writer.to_string())
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
    fn a_mark_names_its_writer_only_while_the_content_is_unchanged() {
        let md5 = [7u8; 16];
        let mark = writer_mark("w1", &md5);
        assert_eq!(writer_from_mark(&mark, Some(md5)), Some("w1".into()));
        assert_eq!(writer_from_mark(&mark, Some([8; 16])), None);
        assert_eq!(writer_from_mark(&mark, None), None);
        assert_eq!(writer_from_mark("garbage", Some(md5)), None);
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
    /// The service refused the credentials (401/403).
    #[error("{message}")]
    Auth { message: String },
    /// Anything else: a bad request, a missing container that cannot be created, local I/O.
    #[error("{message}")]
    Permanent { message: String },
}

impl RemoteError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Transient { .. } | RemoteError::Unreachable { .. }
        )
    }
}

/// What a successful write returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub etag: String,
}

#[async_trait]
pub trait Remote: Send + Sync {
    /// The remote as shown to people: a URL or path, never a secret.
    fn describe(&self) -> String;

    /// Where credentials came from (`AZURE_STORAGE_SAS_TOKEN`, …), for messages.
    fn credential_source(&self) -> String;

    /// Write `data` at `name` if `precondition` holds. `md5` is the content's MD5, sent so
    /// the service verifies what it received; `writer` is stored with the blob.
    async fn put(
        &self,
        name: &str,
        data: Bytes,
        md5: [u8; 16],
        precondition: &Precondition,
        writer: &str,
    ) -> Result<PutOutcome, RemoteError>;

    /// Properties of one blob, `None` when it does not exist.
    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError>;

    /// Every blob below the prefix.
    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError>;
}

/// Build the remote a configuration names, resolving its credentials.
pub fn open(config: &Config) -> Result<Arc<dyn Remote>, RemoteError> {
    match &config.remote {
        RemoteConfig::Directory {
            path,
            embedded_default,
        } => Ok(Arc::new(local::DirectoryRemote::new(
            path,
            *embedded_default,
        ))),
        RemoteConfig::Azure(location) => {
            let file = credential::CredentialsFile::load(&config.dirs.credentials_file())
                .map_err(|message| RemoteError::Permanent { message })?;
            let credential = credential::resolve(location, config.auth, &file)?;
            Ok(Arc::new(azure::AzureRemote::new(location, credential)?))
        }
    }
}
