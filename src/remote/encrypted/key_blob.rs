//! The key blob: the journal's random data key, wrapped with a key derived from the
//! passphrase, stored in the history area ([`KEY_NAME`]) and copied to this machine
//! ([`KeySource::cached`]). Finding it, unlocking it, making it for a new prefix.
//!
//! The local copy lets a daemon start while the remote is away and puts a key blob that
//! went missing back; it is no weaker than the remote's (the passphrase still unlocks it).
//! A remote key blob that unlocks to another key than the local copy's is refused: a
//! stranger who can write the remote must not get this machine to encrypt for their key.

use crate::remote::content::Content;
use crate::remote::crypt::{CryptError, KdfParams, KeyFile, Keys};
use crate::remote::{Precondition, Remote, RemoteError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Below the remote's prefix, directly in the history area: kept out of every listing,
/// not a version name, so history and prune pass it by.
pub const KEY_NAME: &str = ".devlog-history/.key";

/// Largest key blob read (a real one is about 400 bytes).
const KEY_BLOB_MAX: usize = 64 * 1024;

/// Gives the passphrase, or says (in one line, with the fix) why there is none.
pub type Passphrase = Box<dyn Fn() -> Result<Zeroizing<String>, String> + Send + Sync>;

/// Where the key comes from.
pub struct KeySource {
    pub passphrase: Passphrase,
    /// This machine's copy of the key blob.
    pub cached: PathBuf,
}

/// Find and unlock the key of `remote` (the inner, unencrypted remote). With `create`, a
/// prefix with nothing in it gets a new key.
pub async fn unlock(
    remote: &dyn Remote,
    source: &KeySource,
    create: bool,
) -> Result<Arc<Keys>, RemoteError> {
    let passphrase = (source.passphrase)().map_err(|message| RemoteError::Locked { message })?;
    crate::redact::register_secret(&passphrase);
    let cached = read_cached(&source.cached);
    let stored = match fetch(remote).await {
        Ok(stored) => stored,
        // Away: the local copy unlocks the key as well.
        Err(e) if e.is_transient() && cached.is_some() => {
            tracing::info!(
                "the remote cannot be reached ({e}); unlocking this machine's copy of the key"
            );
            return open(cached.as_deref().unwrap_or_default(), &passphrase, remote).await;
        }
        Err(e) => return Err(e),
    };
    match (stored, cached) {
        (Some(stored), cached) => {
            let keys = open(&stored, &passphrase, remote).await?;
            if let Some(cached) = cached.as_deref().and_then(|c| KeyFile::parse(c).ok())
                && cached.id() != keys.id()
            {
                return Err(RemoteError::Locked {
                    message: format!(
                        "the key blob at {} is for key {}, not key {} this machine has used there ({}): if the journal was started again on purpose, move that file away",
                        remote.describe(),
                        keys.id(),
                        cached.id(),
                        source.cached.display()
                    ),
                });
            }
            keep_copy(&source.cached, &stored);
            Ok(keys)
        }
        // The remote lost its key blob: put this machine's copy back.
        (None, Some(cached)) => {
            let keys = open(&cached, &passphrase, remote).await?;
            let content = Content::from_bytes(cached.clone().into());
            match remote
                .put(KEY_NAME, &content, &Precondition::IfAbsent, "")
                .await
            {
                Ok(_) => tracing::warn!(
                    "the key blob was missing from {}; put this machine's copy back",
                    remote.describe()
                ),
                Err(RemoteError::Conflict) => {}
                Err(e) => return Err(e),
            }
            Ok(keys)
        }
        (None, None) => {
            if !remote.list().await?.is_empty() {
                // Another machine may have made the key and pushed since the first look.
                if let Some(stored) = fetch(remote).await? {
                    let keys = open(&stored, &passphrase, remote).await?;
                    keep_copy(&source.cached, &stored);
                    return Ok(keys);
                }
                return Err(RemoteError::Permanent {
                    message: format!(
                        "{} holds files but no encryption key ({KEY_NAME}): if they were pushed with encryption, put the key back with devlogd key import FILE (a copy written by devlogd key export); if they are stored without encryption, they cannot be encrypted in place: give [remote] url a new prefix (its blobs are encrypted from the first push), or set [encryption] enabled = false",
                        remote.describe()
                    ),
                });
            }
            if !create {
                return Err(RemoteError::Permanent {
                    message: format!(
                        "nothing has been pushed to {} yet (it has no encryption key): push from the machine that has the journal first",
                        remote.describe()
                    ),
                });
            }
            create_key(remote, source, passphrase).await
        }
    }
}

/// A new key for an empty prefix, stored only if no other machine stored one meanwhile
/// (then theirs is unlocked instead).
async fn create_key(
    remote: &dyn Remote,
    source: &KeySource,
    passphrase: Zeroizing<String>,
) -> Result<Arc<Keys>, RemoteError> {
    let pass = passphrase.clone();
    let (file, keys) =
        tokio::task::spawn_blocking(move || KeyFile::create(pass.as_bytes(), KdfParams::DEFAULT))
            .await
            .map_err(|e| RemoteError::Permanent {
                message: format!("cannot make the key: {e}"),
            })?
            .map_err(|e| RemoteError::Permanent {
                message: format!("cannot make the key: {e}"),
            })?;
    let bytes = file.to_bytes();
    let content = Content::from_bytes(bytes.clone().into());
    match remote
        .put(KEY_NAME, &content, &Precondition::IfAbsent, "")
        .await
    {
        Ok(_) => {
            keep_copy(&source.cached, &bytes);
            tracing::info!(
                "made the encryption key {} for {}",
                keys.id(),
                remote.describe()
            );
            Ok(Arc::new(keys))
        }
        // Another machine made the prefix's key first: use theirs.
        Err(RemoteError::Conflict) => match fetch(remote).await? {
            Some(stored) => {
                let keys = open(&stored, &passphrase, remote).await?;
                keep_copy(&source.cached, &stored);
                Ok(keys)
            }
            None => Err(RemoteError::Conflict),
        },
        Err(e) => Err(e),
    }
}

/// The key blob's bytes, `None` when the remote has none.
pub async fn fetch(remote: &dyn Remote) -> Result<Option<Vec<u8>>, RemoteError> {
    let mut bytes = Vec::new();
    let found = remote.get(KEY_NAME, &mut bytes).await?;
    if found.is_some() && bytes.len() > KEY_BLOB_MAX {
        return Err(RemoteError::Locked {
            message: format!(
                "the key blob at {} is {} bytes, not a devlogd key",
                remote.describe(),
                bytes.len()
            ),
        });
    }
    Ok(found.map(|_| bytes))
}

/// Unlock the key blob `bytes` with `passphrase` (the KDF runs on the blocking pool).
async fn open(
    bytes: &[u8],
    passphrase: &Zeroizing<String>,
    remote: &dyn Remote,
) -> Result<Arc<Keys>, RemoteError> {
    let file = KeyFile::parse(bytes).map_err(|e| RemoteError::Locked {
        message: format!(
            "{e} ({} at {}): put back a recovery copy with devlogd key import FILE",
            KEY_NAME,
            remote.describe()
        ),
    })?;
    let pass = passphrase.clone();
    let id = file.id().to_string();
    let unlocked = tokio::task::spawn_blocking(move || file.unlock(pass.as_bytes()))
        .await
        .map_err(|e| RemoteError::Permanent {
            message: format!("cannot unlock the key: {e}"),
        })?;
    match unlocked {
        Ok(keys) => Ok(Arc::new(keys)),
        Err(CryptError::WrongPassphrase) => Err(RemoteError::Locked {
            message: format!(
                "the passphrase does not unlock the encryption key {id} of {}: check DEVLOG_PASSPHRASE (environment or credentials file) or [encryption] passphrase_command",
                remote.describe()
            ),
        }),
        Err(e) => Err(RemoteError::Locked {
            message: format!("the key blob of {} is damaged: {e}", remote.describe()),
        }),
    }
}

/// This machine's copy of the key blob, if it has one.
pub fn read_cached(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok().filter(|b| b.len() <= KEY_BLOB_MAX)
}

/// Keep (or refresh) this machine's copy of the key blob: 0600, written whole then renamed.
/// Best effort: without it only an offline start needs the remote.
pub fn keep_copy(path: &Path, bytes: &[u8]) {
    if read_cached(path).as_deref() == Some(bytes) {
        return;
    }
    if let Err(e) = write_private(path, bytes) {
        tracing::warn!(
            "cannot keep a copy of the key blob at {}: {e}",
            path.display()
        );
    }
}

/// Write `bytes` to `path` as a private file, replacing it atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::fsutil::private_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{:08x}", rand::random::<u32>()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
