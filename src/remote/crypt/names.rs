//! Encrypted blob names, deterministic so a path always maps to the same name and can be
//! found, listed and compared without a table (rclone crypt's and Cryptomator's way).
//!
//! Each segment of the path on its own: padded (PKCS#7, to a multiple of 16 bytes, so a
//! length shows only in steps of 16), encrypted with AES-SIV with the plaintext parent
//! path as associated data (so one file name in two directories gives two names, and a
//! segment moved to another directory does not decrypt), then written in lower-case
//! base32 without padding: case-insensitive file systems must not merge two names.

use super::Keys;
use aes_siv::siv::Aes256Siv;
use aes_siv::{Key, KeyInit};
use data_encoding::BASE32_NOPAD;

/// Separates name encryption from every other use of the names key.
const DOMAIN: &[u8] = b"devlogd v1 name\0";
/// The padding block: a segment's length shows only in these steps.
const PAD: usize = 16;
/// AES-SIV's synthetic IV, in front of each ciphertext.
const SIV_TAG: usize = 16;

/// The length of a segment of `plain_len` bytes once encrypted and encoded. A file
/// system's NAME_MAX is 255 bytes: a segment of up to 127 bytes fits (231 characters),
/// one of 128 or more does not (256 and up), so callers refuse longer segments.
pub fn encrypted_segment_len(plain_len: usize) -> usize {
    let sealed = (plain_len / PAD + 1)
        .saturating_mul(PAD)
        .saturating_add(SIV_TAG);
    // Base32: 5 bits a character, no padding.
    sealed.saturating_mul(8).div_ceil(5)
}

impl Keys {
    fn name_cipher(&self) -> Aes256Siv {
        Aes256Siv::new(Key::<Aes256Siv>::from_slice(&self.names))
    }

    /// The encrypted name of `path` (`/`-separated, each segment encrypted on its own).
    /// An empty segment stays empty (so [`crate::remote::check_name`] still refuses the
    /// name); callers pass checked paths, which have none.
    pub fn encrypt_name(&self, path: &str) -> String {
        let mut cipher = self.name_cipher();
        let mut out = String::with_capacity(path.len() * 2 + 64);
        let mut parent_end = 0;
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            if !segment.is_empty() {
                let parent = &path[..parent_end];
                let mut padded = Vec::with_capacity((segment.len() / PAD + 1) * PAD);
                padded.extend_from_slice(segment.as_bytes());
                let fill = PAD - segment.len() % PAD;
                padded.resize(segment.len() + fill, fill as u8);
                let sealed = cipher
                    .encrypt([DOMAIN, parent.as_bytes()], &padded)
                    .expect("AES-SIV refuses only more than 126 headers; there are 2");
                out.push_str(&BASE32_NOPAD.encode(&sealed).to_ascii_lowercase());
            }
            // The parent of the next segment: this one included, without a trailing '/'.
            parent_end = if i == 0 {
                segment.len()
            } else {
                parent_end + 1 + segment.len()
            };
        }
        out
    }

    /// The plaintext path of an encrypted `name`, or `None` when any segment does not
    /// decode, authenticate (another key, another directory, a changed byte), unpad or
    /// read as UTF-8, or is empty.
    pub fn decrypt_name(&self, name: &str) -> Option<String> {
        let mut cipher = self.name_cipher();
        let mut path = String::with_capacity(name.len() / 2);
        for (i, encoded) in name.split('/').enumerate() {
            // Only the canonical lower-case spelling: one name, one blob.
            if encoded.is_empty() || encoded.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            let sealed = BASE32_NOPAD
                .decode(encoded.to_ascii_uppercase().as_bytes())
                .ok()?;
            if sealed.len() < SIV_TAG + PAD || !(sealed.len() - SIV_TAG).is_multiple_of(PAD) {
                return None;
            }
            let padded = cipher.decrypt([DOMAIN, path.as_bytes()], &sealed).ok()?;
            let segment = unpad(&padded)?;
            let segment = std::str::from_utf8(segment).ok()?;
            if segment.is_empty() || segment.contains('/') {
                return None;
            }
            if i > 0 {
                path.push('/');
            }
            path.push_str(segment);
        }
        Some(path)
    }
}

fn unpad(padded: &[u8]) -> Option<&[u8]> {
    let fill = *padded.last()?;
    let fill_len = usize::from(fill);
    if fill == 0 || fill_len > PAD || fill_len > padded.len() {
        return None;
    }
    let (segment, padding) = padded.split_at(padded.len() - fill_len);
    padding.iter().all(|&b| b == fill).then_some(segment)
}

#[cfg(test)]
mod tests {
    use super::super::keys::tests::keys;
    use super::*;

    const PATHS: &[&str] = &[
        "a",
        "journal.md",
        "2026/11/29/entry one.md",
        "notes/héllo wörld/日本語ファイル.txt",
        "deep/er/and/deeper/still/down/here/x",
        "exactly sixteen!",
        "fifteen chars..",
        "with spaces/ and  more ",
        ".devlog/.hidden",
    ];

    fn is_base32_lower(name: &str) -> bool {
        name.bytes()
            .all(|b| b == b'/' || b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    }

    #[test]
    fn names_round_trip_and_hide_their_plaintext() {
        let keys = keys();
        let long = "x".repeat(127);
        let long_path = format!("dir/{long}");
        for path in PATHS.iter().copied().chain([long_path.as_str()]) {
            let name = keys.encrypt_name(path);
            assert!(is_base32_lower(&name), "{name}");
            assert_eq!(name.split('/').count(), path.split('/').count());
            // Base32 of random-looking bytes holds any given 3 letters about once in 300
            // names of this length ("and" did, once in CI): only a segment of 6 or more
            // showing would say something.
            for segment in path.split('/').filter(|s| s.len() >= 6) {
                assert!(!name.contains(segment), "{path}");
                assert!(!name.contains(&segment.to_ascii_lowercase()), "{path}");
            }
            for (plain, enc) in path.split('/').zip(name.split('/')) {
                assert_eq!(enc.len(), encrypted_segment_len(plain.len()), "{plain}");
                assert!(enc.len() <= 255);
            }
            assert_eq!(keys.encrypt_name(path), name, "deterministic");
            assert_eq!(keys.decrypt_name(&name).as_deref(), Some(path));
        }
    }

    #[test]
    fn lengths_show_only_in_steps_of_sixteen() {
        let keys = keys();
        let lens: Vec<usize> = [1, 15, 16, 31]
            .iter()
            .map(|&n| keys.encrypt_name(&"a".repeat(n)).len())
            .collect();
        assert_eq!(lens[0], lens[1]);
        assert_eq!(lens[2], lens[3]);
        assert!(lens[2] > lens[1]);
    }

    #[test]
    fn segment_lengths_against_name_max() {
        assert_eq!(encrypted_segment_len(0), 52);
        assert_eq!(encrypted_segment_len(15), 52);
        assert_eq!(encrypted_segment_len(16), 77);
        assert_eq!(encrypted_segment_len(127), 231);
        assert!(encrypted_segment_len(127) <= 255);
        assert!(encrypted_segment_len(128) > 255);
    }

    #[test]
    fn one_leaf_in_two_directories_gets_two_names() {
        let keys = keys();
        let a = keys.encrypt_name("one/leaf.txt");
        let b = keys.encrypt_name("two/leaf.txt");
        let top = keys.encrypt_name("leaf.txt");
        let (a_leaf, b_leaf) = (a.split('/').nth(1).unwrap(), b.split('/').nth(1).unwrap());
        assert_ne!(a_leaf, b_leaf);
        assert_ne!(a_leaf, top);
        // The directory names are shared with their own paths.
        assert_eq!(a.split('/').next(), Some(keys.encrypt_name("one").as_str()));
        // A leaf moved under the other directory does not decrypt.
        let a_dir = a.split('/').next().unwrap();
        let b_dir = b.split('/').next().unwrap();
        assert_eq!(keys.decrypt_name(&format!("{a_dir}/{b_leaf}")), None);
        assert_eq!(keys.decrypt_name(&format!("{b_dir}/{a_leaf}")), None);
        assert_eq!(keys.decrypt_name(a_leaf), None);
        // Nor do swapped segments.
        let deep = keys.encrypt_name("p/q");
        let swapped: Vec<&str> = deep.split('/').rev().collect();
        assert_eq!(keys.decrypt_name(&swapped.join("/")), None);
    }

    #[test]
    fn foreign_and_garbage_names_decrypt_to_none() {
        let keys = keys();
        let other = super::super::keys::tests::keys();
        let name = keys.encrypt_name("a/b");
        assert_eq!(other.decrypt_name(&name), None);
        let mut flipped = name.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        let huge = "a".repeat(100_000);
        let huge_valid_len = "a".repeat(52 * 1000);
        for garbage in [
            "",
            "/",
            "a",
            "abc",
            "0189",
            "not base32!",
            "journal.md",
            &name.to_ascii_uppercase(),
            &format!("{name}/"),
            &format!("/{name}"),
            &name.replace('/', "//"),
            &flipped,
            &huge,
            &huge_valid_len,
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ü",
        ] {
            assert_eq!(keys.decrypt_name(garbage), None, "{garbage:.60}");
        }
    }

    #[test]
    fn empty_segments_stay_empty() {
        let keys = keys();
        let name = keys.encrypt_name("a//b");
        assert!(name.contains("//"));
        assert_eq!(keys.decrypt_name(&name), None);
        assert_eq!(keys.encrypt_name(""), "");
    }

    #[test]
    fn unpad_refuses_what_padding_never_makes() {
        assert_eq!(unpad(&[]), None);
        assert_eq!(unpad(&[0; 16]), None);
        assert_eq!(unpad(&[17; 17]), None);
        assert_eq!(unpad(&[b'a', 2, 3]), None);
        assert_eq!(unpad(&[b'a', 2, 2]), Some(&b"a"[..]));
        assert_eq!(unpad(&[16; 16]), Some(&b""[..]));
    }
}
