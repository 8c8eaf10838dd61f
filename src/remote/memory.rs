//! An in-memory remote with the same contract as the real ones, plus hooks to inject
//! faults and to hold writes at a gate: for tests of the pipeline and the worker that
//! need no emulator and no real time.

use super::{Precondition, Put, PutOutcome, Remote, RemoteBlob, RemoteError, Sink};
use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
struct Stored {
    data: Vec<u8>,
    md5: [u8; 16],
    etag: String,
    mark: Option<String>,
    /// The writer's host name, when it gave one.
    host: Option<String>,
    /// What a layer above sealed with it.
    sealed: Option<String>,
    written_ns: i128,
    /// When it was stored here (a copy into history: when it was copied).
    service_ns: i128,
}

/// Blobs in a map; ETags count writes.
#[derive(Default)]
pub struct MemoryRemote {
    blobs: Mutex<BTreeMap<String, Stored>>,
    /// Errors the next requests fail with, in order (puts, heads and lists alike).
    faults: Mutex<VecDeque<RemoteError>>,
    /// While closed, writes wait here.
    gate: tokio::sync::RwLock<()>,
    writes: AtomicU64,
    requests: AtomicU64,
}

/// Holds every write until dropped (see [`MemoryRemote::close_gate`]).
pub struct GateClosed<'a>(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'a, ()>);

impl MemoryRemote {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` requests fail with `error`.
    pub fn fail_next(&self, n: usize, error: RemoteError) {
        if let Ok(mut f) = self.faults.lock() {
            f.extend(std::iter::repeat_n(error, n));
        }
    }

    /// No more injected faults (the service is back).
    pub fn clear_faults(&self) {
        if let Ok(mut f) = self.faults.lock() {
            f.clear();
        }
    }

    /// Writes wait until the returned guard is dropped (a stalled service).
    pub async fn close_gate(&self) -> GateClosed<'_> {
        GateClosed(self.gate.write().await)
    }

    /// Successful writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Requests so far, failed ones included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The content of a blob.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.blobs.lock().ok()?.get(name).map(|b| b.data.clone())
    }

    /// Another writer replaces (or creates) a blob, with no mark.
    pub fn write_as_other(&self, name: &str, data: &[u8]) {
        use md5::{Digest, Md5};
        let etag = self.next_etag();
        if let Ok(mut blobs) = self.blobs.lock() {
            blobs.insert(
                name.to_string(),
                Stored {
                    data: data.to_vec(),
                    md5: Md5::digest(data).into(),
                    etag,
                    mark: None,
                    host: None,
                    sealed: None,
                    written_ns: now_ns(),
                    service_ns: now_ns(),
                },
            );
        }
    }

    /// Every blob as stored: name, bytes and sealed value.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>, Option<String>)> {
        self.blobs
            .lock()
            .map(|blobs| {
                blobs
                    .iter()
                    .map(|(name, b)| (name.clone(), b.data.clone(), b.sealed.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Change a blob's bytes in place, as damage at rest or a stranger would, keeping its
    /// metadata (the MD5 follows the bytes, as a service that took a new upload would).
    pub fn tamper(&self, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
        use md5::{Digest, Md5};
        if let Ok(mut blobs) = self.blobs.lock()
            && let Some(blob) = blobs.get_mut(name)
        {
            change(&mut blob.data);
            blob.md5 = Md5::digest(&blob.data).into();
        }
    }

    /// Copy one blob (bytes and metadata) over another name, as a co-writer could.
    pub fn copy_blob(&self, from: &str, to: &str) {
        let etag = self.next_etag();
        if let Ok(mut blobs) = self.blobs.lock()
            && let Some(blob) = blobs.get(from).cloned()
        {
            blobs.insert(to.to_string(), Stored { etag, ..blob });
        }
    }

    fn next_etag(&self) -> String {
        format!("\"m{}\"", self.writes.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn injected(&self) -> Result<(), RemoteError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        match self.faults.lock().ok().and_then(|mut f| f.pop_front()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn blob(name: &str, b: &Stored) -> RemoteBlob {
        RemoteBlob {
            name: name.to_string(),
            size: b.data.len() as u64,
            md5: Some(b.md5),
            etag: b.etag.clone(),
            writer: b
                .mark
                .as_deref()
                .and_then(|m| super::writer_from_mark(m, Some(b.md5), name)),
            host: b.host.clone(),
            written_ns: Some(b.written_ns),
            service_ns: Some(b.service_ns),
            corrupt: false,
            sealed: b.sealed.clone(),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Stored>>, RemoteError> {
        self.blobs.lock().map_err(|_| RemoteError::Permanent {
            message: "memory remote poisoned".into(),
        })
    }
}

fn now_ns() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

#[async_trait]
impl Remote for MemoryRemote {
    fn describe(&self) -> String {
        "memory://".to_string()
    }

    fn credential_source(&self) -> String {
        "none".to_string()
    }

    async fn put_observed(&self, put: Put<'_>) -> Result<PutOutcome, RemoteError> {
        let Put {
            name,
            content,
            precondition,
            writer,
            host,
            seal,
            ..
        } = put;
        super::check_name(name)?;
        let _open = self.gate.read().await;
        self.injected()?;
        let mut data = Vec::with_capacity(content.size() as usize);
        let md5 = content.copy_to(&mut data)?;
        let mut blobs = self.blobs.lock().map_err(|_| RemoteError::Permanent {
            message: "memory remote poisoned".into(),
        })?;
        let holds = match (precondition, blobs.get(name)) {
            (Precondition::IfAbsent, current) => current.is_none(),
            (Precondition::IfMatch(etag), Some(current)) => &current.etag == etag,
            (Precondition::IfMatch(_), None) => false,
            (Precondition::None, _) => true,
        };
        if !holds {
            return Err(RemoteError::Conflict);
        }
        let etag = self.next_etag();
        blobs.insert(
            name.to_string(),
            Stored {
                data,
                md5,
                etag: etag.clone(),
                mark: Some(super::writer_mark(writer, &md5, name)),
                host: (!host.is_empty()).then(|| crate::redact::safe_host(host)),
                sealed: seal.map(|seal| seal()),
                written_ns: now_ns(),
                service_ns: now_ns(),
            },
        );
        Ok(PutOutcome { etag, md5 })
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        super::check_name(name)?;
        self.injected()?;
        let blobs = self.blobs.lock().map_err(|_| RemoteError::Permanent {
            message: "memory remote poisoned".into(),
        })?;
        Ok(blobs.get(name).map(|b| Self::blob(name, b)))
    }

    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        self.injected()?;
        let blobs = self.blobs.lock().map_err(|_| RemoteError::Permanent {
            message: "memory remote poisoned".into(),
        })?;
        Ok(blobs
            .iter()
            .filter(|(n, _)| !super::history_name::is_history(n))
            .map(|(n, b)| Self::blob(n, b))
            .collect())
    }

    async fn list_history(&self, path: Option<&str>) -> Result<Vec<RemoteBlob>, RemoteError> {
        self.injected()?;
        let under = match path {
            Some(p) => format!("{}/{p}/", super::history_name::HISTORY_DIR),
            None => format!("{}/", super::history_name::HISTORY_DIR),
        };
        Ok(self
            .lock()?
            .iter()
            .filter(|(n, _)| n.starts_with(&under))
            .map(|(n, b)| Self::blob(n, b))
            .collect())
    }

    async fn get(&self, name: &str, sink: Sink<'_>) -> Result<Option<RemoteBlob>, RemoteError> {
        super::check_name(name)?;
        self.injected()?;
        let found = self.lock()?.get(name).cloned();
        let Some(stored) = found else {
            return Ok(None);
        };
        sink.write_all(&stored.data)
            .map_err(|e| RemoteError::Permanent {
                message: format!("cannot write: {e}"),
            })?;
        Ok(Some(Self::blob(name, &stored)))
    }

    async fn preserve(&self, name: &str, etag: &str, kept_as: &str) -> Result<(), RemoteError> {
        super::check_name(name)?;
        super::check_name(kept_as)?;
        self.injected()?;
        let mut blobs = self.lock()?;
        let current = match blobs.get(name) {
            Some(b) if b.etag == etag => b.clone(),
            _ => return Err(RemoteError::Conflict),
        };
        // History names derive from the version: there already, it was kept (a retry),
        // unless other content took the name.
        if let Some(kept) = blobs.get(kept_as) {
            return if kept.md5 == current.md5 {
                Ok(())
            } else {
                Err(RemoteError::Permanent {
                    message: format!("the history name {kept_as} holds other content"),
                })
            };
        }
        let copy = Stored {
            etag: self.next_etag(),
            service_ns: now_ns(),
            ..current
        };
        blobs.insert(kept_as.to_string(), copy);
        Ok(())
    }

    async fn delete(&self, name: &str, precondition: &Precondition) -> Result<(), RemoteError> {
        super::check_name(name)?;
        let _open = self.gate.read().await;
        self.injected()?;
        let mut blobs = self.lock()?;
        let holds = match (precondition, blobs.get(name)) {
            (_, None) => return Ok(()),
            (Precondition::IfMatch(etag), Some(current)) => &current.etag == etag,
            (Precondition::IfAbsent, Some(_)) => false,
            (Precondition::None, Some(_)) => true,
        };
        if !holds {
            return Err(RemoteError::Conflict);
        }
        blobs.remove(name);
        Ok(())
    }
}
