//! End-to-end encryption as a remote around another (rclone crypt's model): the pipeline
//! speaks plaintext paths and contents to [`EncryptedRemote`], which stores every journal
//! file under its encrypted name ([`names`]) with its contents encrypted as they are read
//! ([`ContentCipher`], block by block, so memory stays bounded), and its plaintext MD5 and
//! host sealed in the blob's metadata. What comes back is decrypted and authenticated, and
//! anything that does not authenticate is damaged ([`RemoteError::Corrupt`]), never written
//! on: a flipped byte, a blob copied over another path's, a cut-short stream.
//!
//! Listings show only blobs this key wrote; the pipeline above sees the same sizes, MD5s
//! and names it would see without encryption, so every command works unchanged.

pub mod key_blob;
pub mod names;
mod sink;
#[cfg(test)]
mod tests;

use super::content::Transform;
use super::crypt::{Encryptor, Keys, stream};
use super::{
    Features, ListingSender, Probe, Put, PutOutcome, Remote, RemoteBlob, RemoteError, Sink,
};
use async_trait::async_trait;
pub use key_blob::{KEY_NAME, KeySource};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::OnceCell;

/// A remote whose blobs are encrypted with the journal's key, unlocked on first use.
pub struct EncryptedRemote {
    inner: Arc<dyn Remote>,
    source: KeySource,
    keys: OnceCell<Arc<Keys>>,
    /// Whether a first push may make the key of an empty prefix ([`Remote::ready`] says).
    may_create: AtomicBool,
    /// How many listed blobs this key did not write, as last said (said again when it changes).
    foreign_said: AtomicUsize,
}

impl EncryptedRemote {
    pub fn new(inner: Arc<dyn Remote>, source: KeySource) -> Self {
        EncryptedRemote {
            inner,
            source,
            keys: OnceCell::new(),
            may_create: AtomicBool::new(false),
            foreign_said: AtomicUsize::new(0),
        }
    }

    /// The key, unlocked once. A key that cannot be unlocked on first use by a command
    /// that did not ask first ([`Remote::ready`]) stops the work as refused credentials do.
    async fn keys(&self) -> Result<&Arc<Keys>, RemoteError> {
        self.keys
            .get_or_try_init(|| async {
                key_blob::unlock(
                    self.inner.as_ref(),
                    &self.source,
                    self.may_create.load(Ordering::SeqCst),
                )
                .await
                .map_err(|e| match e {
                    RemoteError::Locked { message } => RemoteError::Auth { message },
                    other => other,
                })
            })
            .await
    }

    fn stored_name(&self, keys: &Keys, name: &str) -> Result<String, RemoteError> {
        names::encrypt(keys, name, self.inner.name_prefix().len())
            .map_err(|message| RemoteError::Permanent { message })
    }

    /// A stored blob as the pipeline sees it, `None` when this key did not write it.
    fn opened(keys: &Keys, blob: RemoteBlob) -> Option<RemoteBlob> {
        let name = names::decrypt(keys, &blob.name)?;
        let path = names::journal_path(&name);
        let size = stream::plain_len(blob.size);
        let meta = blob
            .sealed
            .as_deref()
            .and_then(|sealed| keys.open_meta(path, sealed));
        let intact = size.is_some() && meta.is_some() && !blob.corrupt;
        let (md5, host) = match meta {
            Some((md5, host)) => (Some(md5), (!host.is_empty()).then_some(host)),
            None => (None, None),
        };
        Some(RemoteBlob {
            name,
            size: size.unwrap_or(0),
            md5,
            host: blob
                .writer
                .as_ref()
                .and(host)
                .map(|h| crate::redact::safe_host(&h)),
            corrupt: !intact,
            sealed: None,
            ..blob
        })
    }

    /// A listing's blobs as the pipeline sees them; the ones this key did not write are
    /// left out, and said once (again when their number changes).
    fn opened_all(&self, keys: &Keys, blobs: Vec<RemoteBlob>) -> Vec<RemoteBlob> {
        let mut foreign = 0;
        let opened: Vec<RemoteBlob> = blobs
            .into_iter()
            .filter(|b| !names::is_reserved(&b.name))
            .filter_map(|b| {
                let opened = Self::opened(keys, b);
                foreign += usize::from(opened.is_none());
                opened
            })
            .collect();
        if foreign > 0 && self.foreign_said.swap(foreign, Ordering::Relaxed) != foreign {
            tracing::warn!(
                "{foreign} blobs at {} are not this journal's encrypted files (stored in clear, or with another key); left alone",
                self.inner.describe()
            );
        }
        opened
    }
}

/// A file's contents as stored: the STREAM construction's chunks, block by block.
struct ContentCipher(Encryptor);

impl Transform for ContentCipher {
    fn stored_len(&self, len: u64) -> u64 {
        stream::encrypted_len(len)
    }

    fn whole(&self, plain: &[u8]) -> Vec<u8> {
        self.0.encrypt_all(plain)
    }

    fn block(&self, index: u32, plain: &[u8], last: bool) -> Vec<u8> {
        let chunks_per_block = (super::content::BLOCK_SIZE / stream::CHUNK as u64) as u32;
        let header = if index == 0 { stream::HEADER_LEN } else { 0 };
        let mut out = Vec::with_capacity(
            header + plain.len() + (plain.len() / stream::CHUNK + 1) * stream::TAG,
        );
        if index == 0 {
            out.extend_from_slice(&self.0.header());
        }
        self.0
            .encrypt_chunks_into(index * chunks_per_block, plain, last, &mut out);
        out
    }
}

#[async_trait]
impl Remote for EncryptedRemote {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn credential_source(&self) -> String {
        self.inner.credential_source()
    }

    fn name_prefix(&self) -> String {
        self.inner.name_prefix()
    }

    fn features(&self) -> Features<'_> {
        self.inner.features()
    }

    async fn ready(&self, create: bool) -> Result<(), RemoteError> {
        if create {
            self.may_create.store(true, Ordering::SeqCst);
        }
        if self.keys.initialized() {
            return Ok(());
        }
        let keys = key_blob::unlock(self.inner.as_ref(), &self.source, create).await?;
        let _ = self.keys.set(keys);
        Ok(())
    }

    async fn put_observed(&self, put: Put<'_>) -> Result<PutOutcome, RemoteError> {
        if names::is_reserved(put.name) {
            return self.inner.put_observed(put).await;
        }
        let keys = self.keys().await?.clone();
        let stored = self.stored_name(&keys, put.name)?;
        let view = put
            .content
            .transformed(Arc::new(ContentCipher(keys.encryptor(put.name))));
        let plain = put.content.clone();
        let (path, host) = (put.name.to_string(), put.host.to_string());
        let sealed_keys = keys.clone();
        let seal: super::Seal = Arc::new(move || {
            // Known by now: read at open, or hashed as the view was read whole.
            let md5 = plain.known_md5().unwrap_or_default();
            sealed_keys.seal_meta(&path, &md5, &host)
        });
        let outcome = self
            .inner
            .put_observed(Put {
                name: &stored,
                content: &view,
                // The host goes sealed, never in clear.
                host: "",
                seal: Some(seal),
                ..put
            })
            .await?;
        Ok(PutOutcome {
            etag: outcome.etag,
            md5: put.content.known_md5().unwrap_or(outcome.md5),
        })
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        if names::is_reserved(name) {
            return self.inner.head(name).await;
        }
        let keys = self.keys().await?;
        let stored = self.stored_name(keys, name)?;
        Ok(self
            .inner
            .head(&stored)
            .await?
            .and_then(|b| Self::opened(keys, b)))
    }

    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        let keys = self.keys().await?;
        let blobs = self.inner.list().await?;
        Ok(self.opened_all(keys, blobs))
    }

    async fn list_sending(&self, early: &ListingSender) -> Result<Vec<RemoteBlob>, RemoteError> {
        let keys = self.keys().await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<RemoteBlob>>();
        let inner = self.inner.clone();
        let listing = async move {
            let listed = inner.list_sending(&tx).await;
            drop(tx);
            listed
        };
        let forward = async {
            while let Some(batch) = rx.recv().await {
                let opened: Vec<RemoteBlob> = batch
                    .into_iter()
                    .filter_map(|b| Self::opened(keys, b))
                    .collect();
                let _ = early.send(opened);
            }
        };
        let (listed, ()) = tokio::join!(listing, forward);
        Ok(self.opened_all(keys, listed?))
    }

    async fn list_history(&self, path: Option<&str>) -> Result<Vec<RemoteBlob>, RemoteError> {
        let keys = self.keys().await?;
        let stored = match path {
            Some(path) => Some(self.stored_name(keys, path)?),
            None => None,
        };
        let blobs = self.inner.list_history(stored.as_deref()).await?;
        Ok(self.opened_all(keys, blobs))
    }

    async fn get(&self, name: &str, sink: Sink<'_>) -> Result<Option<RemoteBlob>, RemoteError> {
        if names::is_reserved(name) {
            return self.inner.get(name, sink).await;
        }
        let keys = self.keys().await?;
        let stored = self.stored_name(keys, name)?;
        let path = names::journal_path(name);
        let mut decrypting = sink::Decrypting::new(keys.decryptor(path), sink);
        let got = self.inner.get(&stored, &mut decrypting).await;
        let corrupt = || RemoteError::Corrupt {
            name: name.to_string(),
        };
        let found = match got {
            Ok(found) => found,
            Err(_) if decrypting.refused() => return Err(corrupt()),
            Err(e) => return Err(e),
        };
        let Some(blob) = found else {
            return Ok(None);
        };
        let plain_md5 = decrypting.finish().map_err(|e| match e {
            sink::Failed::Corrupt => corrupt(),
            sink::Failed::Write(e) => RemoteError::Permanent {
                message: format!("cannot write: {e}"),
            },
        })?;
        let Some(blob) = Self::opened(keys, blob) else {
            return Err(corrupt());
        };
        // The sealed MD5 is what the writer read from its file: the bytes must be those.
        if blob.corrupt || blob.md5 != Some(plain_md5) {
            return Err(corrupt());
        }
        Ok(Some(blob))
    }

    async fn preserve(&self, name: &str, etag: &str, kept_as: &str) -> Result<(), RemoteError> {
        let keys = self.keys().await?;
        let (stored, kept) = (
            self.stored_name(keys, name)?,
            self.stored_name(keys, kept_as)?,
        );
        self.inner.preserve(&stored, etag, &kept).await
    }

    async fn delete(
        &self,
        name: &str,
        precondition: &super::Precondition,
    ) -> Result<(), RemoteError> {
        if names::is_reserved(name) {
            return self.inner.delete(name, precondition).await;
        }
        let keys = self.keys().await?;
        let stored = self.stored_name(keys, name)?;
        self.inner.delete(&stored, precondition).await
    }

    async fn probe(&self) -> Result<Probe, RemoteError> {
        self.inner.probe().await
    }

    async fn service_now(&self) -> Result<Option<time::OffsetDateTime>, RemoteError> {
        self.inner.service_now().await
    }
}
