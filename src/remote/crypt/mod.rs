//! End-to-end encryption's primitives: what leaves the machine is unreadable without the
//! passphrase, and any change made to it on the remote is caught, not restored.
//!
//! - A random 32-byte master key, stored on the remote only wrapped ([`KeyFile`]: Argon2id
//!   of the passphrase → XChaCha20-Poly1305). HKDF-SHA256 derives the subkeys ([`Keys`]);
//!   the master key itself is never kept.
//! - Names ([`names`]): each path segment padded to 16 bytes, encrypted with AES-SIV (so the
//!   same path always has the same name and can be found again) with its plaintext parent
//!   path as associated data, then lower-case base32.
//! - Contents ([`stream`]): XChaCha20-Poly1305 in the STREAM construction (as age), 64 KiB
//!   chunks, a random nonce prefix per blob, the plaintext path as associated data: a blob
//!   that is cut short, reordered or copied over another path's name does not decrypt.
//! - The metadata beside a blob ([`sealed`]): the plaintext MD5 and the writer's host.
//!
//! Every construction is the RustCrypto crates'; nothing here is home-made cryptography.

mod keys;
pub mod names;
pub mod sealed;
pub mod stream;

pub use keys::{KdfParams, KeyFile, Keys};
pub use names::encrypted_segment_len;
pub use stream::{
    CHUNK, DecryptError, Decryptor, Encryptor, HEADER_LEN, MAX_PLAIN_LEN, TAG, encrypted_len,
    plain_len,
};

/// Why a key could not be unlocked or a name or content could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// The key blob refused the passphrase (or its salt, parameters or wrapped key were
    /// changed: the two cannot be told apart).
    #[error("the passphrase does not unlock the key")]
    WrongPassphrase,
    #[error("the key blob is not a devlogd key: {0}")]
    BadKeyFile(String),
    /// Authentication failed: flipped bytes, a truncated or reordered stream, another path's blob.
    #[error("the encrypted content does not authenticate (damaged, cut short, or another file's)")]
    Corrupt,
}

/// Associated data binding a ciphertext to `path` under one use's `domain`, so what was
/// sealed for one path (or one use) never authenticates as another's.
fn bound_to(domain: &[u8], path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(domain.len() + path.len());
    aad.extend_from_slice(domain);
    aad.extend_from_slice(path.as_bytes());
    aad
}
