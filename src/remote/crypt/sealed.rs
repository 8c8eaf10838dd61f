//! The metadata stored beside a blob (an HTTP header, an xattr): the plaintext's MD5, so
//! changes can be found without downloading, and the writer's host name, both sealed so
//! the remote sees neither and cannot swap them between paths.

use super::Keys;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const DOMAIN: &[u8] = b"devlogd v1 meta\0";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const MD5_LEN: usize = 16;
/// The most of a host name kept (cut at a character boundary), so a sealed value always
/// stays well under [`MAX_SEALED`]. Hosts are sanitised to 40 characters before this.
const MAX_HOST: usize = 255;
/// The longest sealed value [`Keys::open_meta`] reads.
const MAX_SEALED: usize = 1024;

fn associated_data(path: &str) -> Vec<u8> {
    super::bound_to(DOMAIN, path)
}

impl Keys {
    fn meta_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.meta.as_ref().into())
    }

    /// `md5` and `host` sealed for the blob of `path`: URL-safe base64 without padding, so
    /// plain ASCII. A host longer than 255 bytes is cut.
    pub fn seal_meta(&self, path: &str, md5: &[u8; 16], host: &str) -> String {
        let mut cut = host.len().min(MAX_HOST);
        while !host.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut plain = Vec::with_capacity(MD5_LEN + cut);
        plain.extend_from_slice(md5);
        plain.extend_from_slice(&host.as_bytes()[..cut]);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(path);
        let sealed = self
            .meta_cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .expect(
                "XChaCha20-Poly1305 refuses only messages above 256 GiB; this is under 300 bytes",
            );
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The MD5 and host sealed for `path`, or `None` for anything else: another path's
    /// value, another key's, a changed character, not base64, longer than 1 KiB.
    pub fn open_meta(&self, path: &str, sealed: &str) -> Option<([u8; 16], String)> {
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN + TAG_LEN + MD5_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(path);
        let plain = self
            .meta_cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?;
        let (md5, host) = plain.split_at(MD5_LEN);
        let md5 = <[u8; MD5_LEN]>::try_from(md5).ok()?;
        let host = String::from_utf8(host.to_vec()).ok()?;
        Some((md5, host))
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::tests::keys;
    use super::*;

    const MD5: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn metadata_round_trips_as_ascii() {
        let keys = keys();
        for host in ["laptop", "", "höst-名前", &"h".repeat(40)] {
            let sealed = keys.seal_meta("dir/f.md", &MD5, host);
            assert!(
                sealed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert!(!sealed.contains(host) || host.is_empty());
            assert_eq!(
                keys.open_meta("dir/f.md", &sealed),
                Some((MD5, host.to_string()))
            );
        }
        // Fresh nonces: the same value seals differently each time.
        assert_ne!(
            keys.seal_meta("p", &MD5, "h"),
            keys.seal_meta("p", &MD5, "h")
        );
        // Long hosts are cut at a character boundary, and still open.
        let long = "é".repeat(300);
        let sealed = keys.seal_meta("p", &MD5, &long);
        assert!(sealed.len() <= MAX_SEALED);
        let (_, host) = keys.open_meta("p", &sealed).unwrap();
        assert_eq!(host, "é".repeat(127));
    }

    #[test]
    fn another_path_key_or_a_changed_character_opens_nothing() {
        let keys = keys();
        let sealed = keys.seal_meta("dir/f.md", &MD5, "laptop");
        assert_eq!(keys.open_meta("dir/g.md", &sealed), None);
        assert_eq!(
            super::super::keys::tests::keys().open_meta("dir/f.md", &sealed),
            None
        );
        for at in [0, 10, sealed.len() / 2, sealed.len() - 2] {
            let mut bytes = sealed.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let flipped = String::from_utf8(bytes).unwrap();
            assert_eq!(keys.open_meta("dir/f.md", &flipped), None, "at {at}");
        }
        let long = "A".repeat(MAX_SEALED + 4);
        for garbage in ["", "!!", "AAAA", &sealed[..sealed.len() - 1], &long, "é"] {
            assert_eq!(keys.open_meta("dir/f.md", garbage), None);
        }
    }
}
