//! The key blob on the remote and the keys derived from it. One random master key per
//! remote, wrapped under the passphrase, so changing the passphrase rewrites one small blob
//! and not every file; the master key is unwrapped only long enough to derive the subkeys.

use super::CryptError;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Argon2id's cost parameters for turning a passphrase into the key that wraps the master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// OWASP's Argon2id line of 46 MiB with two passes (one more than its minimum): costly
    /// for a guesser on every try, still a fraction of a second for us. The memory must
    /// stay well under 64 MiB, devlogd's bound on its peak RSS, since unlocking happens in
    /// the daemon.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 47_104,
        t: 2,
        p: 1,
    };

    /// The most a key blob may ask for: 1 GiB, 20 passes, 16 lanes. Whoever can write the
    /// remote can write the blob, and must not make us allocate 100 GiB or spin for hours.
    const MAX_M_KIB: u32 = 1 << 20;
    const MAX_T: u32 = 20;
    const MAX_P: u32 = 16;

    /// Argon2's parameters, or why these are refused (before anything is allocated).
    fn argon2(self) -> Result<Argon2<'static>, CryptError> {
        if self.m_kib > Self::MAX_M_KIB || self.t > Self::MAX_T || self.p > Self::MAX_P {
            return Err(CryptError::BadKeyFile(format!(
                "its KDF parameters (m_kib {}, t {}, p {}) exceed the limits (m_kib {}, t {}, p {})",
                self.m_kib,
                self.t,
                self.p,
                Self::MAX_M_KIB,
                Self::MAX_T,
                Self::MAX_P
            )));
        }
        let params = Params::new(self.m_kib, self.t, self.p, Some(KEY_LEN)).map_err(|e| {
            CryptError::BadKeyFile(format!(
                "its KDF parameters (m_kib {}, t {}, p {}) are refused by Argon2: {e}",
                self.m_kib, self.t, self.p
            ))
        })?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// The key-encryption key for `passphrase` and `salt`.
    fn kek(
        self,
        passphrase: &[u8],
        salt: &[u8; SALT_LEN],
    ) -> Result<XChaCha20Poly1305, CryptError> {
        let mut kek = Zeroizing::new([0u8; KEY_LEN]);
        self.argon2()?
            .hash_password_into(passphrase, salt, kek.as_mut())
            .map_err(|e| CryptError::BadKeyFile(format!("Argon2 refused the passphrase: {e}")))?;
        Ok(XChaCha20Poly1305::new(kek.as_ref().into()))
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

const KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const WRAPPED_LEN: usize = KEY_LEN + 16;
const ID_LEN: usize = 16;
const FORMAT_VERSION: u32 = 1;
const KDF_NAME: &str = "argon2id";
/// A key blob is a few hundred bytes; anything much larger is not one.
const MAX_KEY_FILE: usize = 64 * 1024;

/// The subkeys of one master key. Not `Clone`: share it behind an `Arc`. Zeroed on drop.
pub struct Keys {
    /// XChaCha20-Poly1305 for contents.
    pub(super) content: [u8; 32],
    /// AES-SIV-CMAC-256 for names.
    pub(super) names: [u8; 64],
    /// XChaCha20-Poly1305 for the metadata beside a blob.
    pub(super) meta: [u8; 32],
    id: String,
}

impl Keys {
    fn derive(master: &[u8; KEY_LEN]) -> Keys {
        let hkdf = Hkdf::<Sha256>::new(None, master);
        let expand = |info: &str, out: &mut [u8]| {
            hkdf.expand(info.as_bytes(), out).expect(
                "HKDF-SHA256 gives up to 8160 bytes; every length here is a constant below 64",
            );
        };
        let mut keys = Keys {
            content: [0; 32],
            names: [0; 64],
            meta: [0; 32],
            id: String::new(),
        };
        expand("devlogd v1 content", &mut keys.content);
        expand("devlogd v1 names", &mut keys.names);
        expand("devlogd v1 metadata", &mut keys.meta);
        let mut id = [0u8; ID_LEN / 2];
        expand("devlogd v1 id", &mut id);
        keys.id = id.iter().map(|b| format!("{b:02x}")).collect();
        keys
    }

    /// The key's fingerprint: 16 lower-case hex characters that two machines can compare
    /// to know they hold the same key. Derived one-way, it reveals nothing of the key.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.content.zeroize();
        self.names.zeroize();
        self.meta.zeroize();
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The key blob stored on the remote: the master key wrapped under the passphrase, with
/// what is needed to unwrap it. Holds no secret in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; WRAPPED_LEN],
    id: String,
}

/// The blob's JSON, field by field.
#[derive(Serialize, Deserialize)]
struct Wire {
    devlogd_key: u32,
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    wrapped: String,
    id: String,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn bad(reason: &str) -> CryptError {
    CryptError::BadKeyFile(reason.to_string())
}

fn decode_b64<const N: usize>(text: &str, field: &str) -> Result<[u8; N], CryptError> {
    BASE64
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| CryptError::BadKeyFile(format!("its {field} is not {N} bytes of base64")))
}

impl KeyFile {
    /// A new random master key wrapped under `passphrase`, and its keys.
    pub fn create(passphrase: &[u8], params: KdfParams) -> Result<(KeyFile, Keys), CryptError> {
        let master = Zeroizing::new(random::<KEY_LEN>());
        let keys = Keys::derive(&master);
        let file = Self::wrap(&master, keys.id(), passphrase, params)?;
        Ok((file, keys))
    }

    /// The keys, if `passphrase` unwraps the master key. A changed salt, parameter or
    /// wrapped key reads as [`CryptError::WrongPassphrase`] (the AEAD covers them all);
    /// parameters no honest blob has are [`CryptError::BadKeyFile`], refused before Argon2
    /// runs.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<Keys, CryptError> {
        let master = self.unwrap_master(passphrase)?;
        let keys = Keys::derive(&master);
        if keys.id() != self.id {
            return Err(bad("its id does not match its key"));
        }
        Ok(keys)
    }

    /// The same master key (so the same id and every file still readable) under a new
    /// passphrase, with a new salt and nonce and the [`KdfParams::DEFAULT`] costs.
    pub fn rewrap(&self, old: &[u8], new: &[u8]) -> Result<KeyFile, CryptError> {
        let master = self.unwrap_master(old)?;
        if Keys::derive(&master).id() != self.id {
            return Err(bad("its id does not match its key"));
        }
        Self::wrap(&master, &self.id, new, KdfParams::DEFAULT)
    }

    /// The key's fingerprint, as [`Keys::id`] gives it once unlocked.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How the passphrase is stretched into the key that unwraps it.
    pub fn kdf_params(&self) -> KdfParams {
        self.params
    }

    /// The blob's JSON (pretty, with a final newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            devlogd_key: FORMAT_VERSION,
            kdf: KDF_NAME.to_string(),
            m_kib: self.params.m_kib,
            t: self.params.t,
            p: self.params.p,
            salt: BASE64.encode(self.salt),
            nonce: BASE64.encode(self.nonce),
            wrapped: BASE64.encode(self.wrapped),
            id: self.id.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&wire)
            .expect("a struct of strings and numbers always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// A key blob read from the remote, checked for shape (not for the passphrase).
    pub fn parse(bytes: &[u8]) -> Result<KeyFile, CryptError> {
        if bytes.len() > MAX_KEY_FILE {
            return Err(CryptError::BadKeyFile(format!(
                "it is {} bytes, a key blob is under {MAX_KEY_FILE}",
                bytes.len()
            )));
        }
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| CryptError::BadKeyFile(format!("it is not the expected JSON: {e}")))?;
        if wire.devlogd_key != FORMAT_VERSION {
            return Err(CryptError::BadKeyFile(format!(
                "its format version is {}, this devlogd reads {FORMAT_VERSION}",
                wire.devlogd_key
            )));
        }
        if wire.kdf != KDF_NAME {
            return Err(bad("its KDF is not argon2id"));
        }
        let params = KdfParams {
            m_kib: wire.m_kib,
            t: wire.t,
            p: wire.p,
        };
        params.argon2()?;
        let id_ok = wire.id.len() == ID_LEN
            && wire
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !id_ok {
            return Err(bad("its id is not 16 lower-case hex characters"));
        }
        Ok(KeyFile {
            params,
            salt: decode_b64(&wire.salt, "salt")?,
            nonce: decode_b64(&wire.nonce, "nonce")?,
            wrapped: decode_b64(&wire.wrapped, "wrapped key")?,
            id: wire.id,
        })
    }

    fn wrap(
        master: &[u8; KEY_LEN],
        id: &str,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<KeyFile, CryptError> {
        let salt = random::<SALT_LEN>();
        let nonce = random::<NONCE_LEN>();
        let kek = params.kek(passphrase, &salt)?;
        let aad = wrap_aad(params, &salt);
        let wrapped = kek
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: master,
                    aad: &aad,
                },
            )
            .map_err(|_| bad("the master key could not be wrapped"))?;
        let wrapped = <[u8; WRAPPED_LEN]>::try_from(wrapped)
            .map_err(|_| bad("the wrapped key has an unexpected length"))?;
        Ok(KeyFile {
            params,
            salt,
            nonce,
            wrapped,
            id: id.to_string(),
        })
    }

    fn unwrap_master(&self, passphrase: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptError> {
        let kek = self.params.kek(passphrase, &self.salt)?;
        let aad = wrap_aad(self.params, &self.salt);
        let opened = Zeroizing::new(
            kek.decrypt(
                XNonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.wrapped,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptError::WrongPassphrase)?,
        );
        let mut master = Zeroizing::new([0u8; KEY_LEN]);
        if opened.len() != KEY_LEN {
            return Err(bad("the wrapped key has an unexpected length"));
        }
        master.copy_from_slice(&opened);
        Ok(master)
    }
}

/// What the wrapping authenticates besides the key: the format and the KDF's inputs, so
/// weaker parameters or another salt cannot be put in front of the same wrapped key.
fn wrap_aad(params: KdfParams, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut aad = b"devlogd key v1\0argon2id\0".to_vec();
    aad.extend_from_slice(&params.m_kib.to_be_bytes());
    aad.extend_from_slice(&params.t.to_be_bytes());
    aad.extend_from_slice(&params.p.to_be_bytes());
    aad.extend_from_slice(salt);
    aad
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Cheap KDF costs, so tests run fast (never used outside tests).
    pub(in crate::remote::crypt) const FAST: KdfParams = KdfParams {
        m_kib: 1024,
        t: 1,
        p: 1,
    };

    /// Fresh keys for a test.
    pub(in crate::remote::crypt) fn keys() -> Keys {
        KeyFile::create(b"test", FAST)
            .expect("creating a key with small parameters")
            .1
    }

    fn json(file: &KeyFile) -> serde_json::Value {
        serde_json::from_slice(&file.to_bytes()).unwrap()
    }

    fn with(file: &KeyFile, field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v = json(file);
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn created_key_survives_the_round_trip_through_its_blob() {
        let (file, keys) = KeyFile::create(b"correct horse", FAST).unwrap();
        let bytes = file.to_bytes();
        assert!(bytes.ends_with(b"}\n"));
        let v = json(&file);
        assert_eq!(v["devlogd_key"], 1);
        assert_eq!(v["kdf"], "argon2id");
        assert_eq!(v["m_kib"], 1024);
        assert_eq!(
            BASE64.decode(v["salt"].as_str().unwrap()).unwrap().len(),
            16
        );
        assert_eq!(
            BASE64.decode(v["nonce"].as_str().unwrap()).unwrap().len(),
            24
        );
        let parsed = KeyFile::parse(&bytes).unwrap();
        assert_eq!(parsed, file);
        let unlocked = parsed.unlock(b"correct horse").unwrap();
        assert_eq!(unlocked.id(), keys.id());
        assert_eq!(parsed.id(), keys.id());
        assert_eq!(keys.id().len(), 16);
        assert!(
            keys.id()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            unlocked.encrypt_name("a/b.txt"),
            keys.encrypt_name("a/b.txt")
        );
        // Subkeys differ from one another.
        assert_ne!(keys.content, keys.meta);
        assert_ne!(keys.content[..], keys.names[..32]);
    }

    #[test]
    fn two_keys_differ() {
        let (a, b) = (keys(), keys());
        assert_ne!(a.id(), b.id());
        assert_ne!(a.encrypt_name("x"), b.encrypt_name("x"));
    }

    #[test]
    fn wrong_passphrase_is_refused() {
        let (file, _) = KeyFile::create(b"right", FAST).unwrap();
        assert!(matches!(
            file.unlock(b"wrong"),
            Err(CryptError::WrongPassphrase)
        ));
        assert!(matches!(file.unlock(b""), Err(CryptError::WrongPassphrase)));
    }

    #[test]
    fn rewrap_keeps_the_key_and_changes_the_passphrase() {
        let (file, keys) = KeyFile::create(b"old", FAST).unwrap();
        assert!(matches!(
            file.rewrap(b"nope", b"new"),
            Err(CryptError::WrongPassphrase)
        ));
        let new = KeyFile::parse(&file.rewrap(b"old", b"new").unwrap().to_bytes()).unwrap();
        assert_eq!(new.id(), file.id());
        assert_eq!(new.params, KdfParams::DEFAULT);
        assert_ne!(new.salt, file.salt);
        assert_ne!(new.nonce, file.nonce);
        assert!(matches!(
            new.unlock(b"old"),
            Err(CryptError::WrongPassphrase)
        ));
        let unlocked = new.unlock(b"new").unwrap();
        assert_eq!(unlocked.id(), keys.id());
        assert_eq!(unlocked.encrypt_name("n"), keys.encrypt_name("n"));
    }

    #[test]
    fn tampered_fields_are_refused() {
        let (file, _) = KeyFile::create(b"pw", FAST).unwrap();
        let other = KeyFile::create(b"pw", FAST).unwrap().0;
        let flip = |field: &str| {
            let mut bytes = BASE64.decode(json(&file)[field].as_str().unwrap()).unwrap();
            bytes[3] ^= 1;
            serde_json::Value::from(BASE64.encode(bytes))
        };
        let cases = [
            with(&file, "salt", flip("salt")),
            with(&file, "nonce", flip("nonce")),
            with(&file, "wrapped", flip("wrapped")),
            with(&file, "m_kib", 1032.into()),
            with(&file, "t", 2.into()),
            with(&file, "wrapped", json(&other)["wrapped"].clone()),
        ];
        for bytes in cases {
            let parsed = KeyFile::parse(&bytes).unwrap();
            assert!(matches!(
                parsed.unlock(b"pw"),
                Err(CryptError::WrongPassphrase)
            ));
        }
        // Another key's id in front of this key.
        let parsed = KeyFile::parse(&with(&file, "id", json(&other)["id"].clone())).unwrap();
        assert!(matches!(
            parsed.unlock(b"pw"),
            Err(CryptError::BadKeyFile(_))
        ));
        // Not the shape of a key blob at all.
        let shapes = [
            with(&file, "salt", "short".into()),
            with(&file, "salt", "!!!not base64".into()),
            with(&file, "wrapped", BASE64.encode([0u8; 47]).into()),
            with(&file, "id", "ABCDEF0123456789".into()),
            with(&file, "id", "abc".into()),
            with(&file, "kdf", "scrypt".into()),
            with(&file, "devlogd_key", 2.into()),
            with(&file, "t", (-1).into()),
            b"{}".to_vec(),
            b"not json".to_vec(),
            Vec::new(),
            vec![b' '; MAX_KEY_FILE + 1],
        ];
        for bytes in shapes {
            assert!(matches!(
                KeyFile::parse(&bytes),
                Err(CryptError::BadKeyFile(_))
            ));
        }
    }

    #[test]
    fn hostile_kdf_parameters_are_refused_before_argon2_runs() {
        let (file, _) = KeyFile::create(b"pw", FAST).unwrap();
        for (field, value) in [
            ("m_kib", 1u32 << 30),
            ("m_kib", (1 << 20) + 1),
            ("m_kib", 4),
            ("t", 21),
            ("t", 0),
            ("p", 17),
            ("p", 0),
        ] {
            let started = std::time::Instant::now();
            let err = KeyFile::parse(&with(&file, field, value.into())).unwrap_err();
            assert!(
                matches!(err, CryptError::BadKeyFile(_)),
                "{field} {value}: {err}"
            );
            // A struct built some other way is checked again by unlock.
            let mut hostile = file.clone();
            match field {
                "m_kib" => hostile.params.m_kib = value,
                "t" => hostile.params.t = value,
                _ => hostile.params.p = value,
            }
            assert!(matches!(
                hostile.unlock(b"pw"),
                Err(CryptError::BadKeyFile(_))
            ));
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        assert!(matches!(
            KeyFile::create(
                b"pw",
                KdfParams {
                    m_kib: 1 << 30,
                    t: 1,
                    p: 1
                }
            ),
            Err(CryptError::BadKeyFile(_))
        ));
    }

    #[test]
    fn default_parameters_take_this_long() {
        let started = std::time::Instant::now();
        let (file, _) = KeyFile::create(b"a passphrase", KdfParams::DEFAULT).unwrap();
        println!(
            "KeyFile::create with KdfParams::DEFAULT took {:?}",
            started.elapsed()
        );
        assert_eq!(KdfParams::default(), KdfParams::DEFAULT);
        assert!(file.unlock(b"a passphrase").is_ok());
    }

    #[test]
    fn debug_shows_no_key() {
        let keys = keys();
        let shown = format!("{keys:?}");
        assert!(shown.contains(keys.id()));
        assert!(!shown.contains("content") && !shown.contains("names") && !shown.contains("meta"));
    }
}
