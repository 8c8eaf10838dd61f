//! File contents: XChaCha20-Poly1305 in the STREAM construction (`aead::stream::StreamBE32`,
//! as age uses it), so a file of any size is encrypted and decrypted a chunk at a time in
//! bounded memory, and blocks of it in parallel.
//!
//! A blob is a 27-byte header (the magic `DLGDENC1`, then a random 19-byte nonce prefix)
//! and then the chunks: each 64 KiB of plaintext sealed with its 16-byte tag under the
//! nonce `prefix ‖ u32 BE chunk index ‖ last-flag`. Every chunk but the final one is full;
//! the final one is shorter than a full chunk (empty when the length is a multiple of
//! [`CHUNK`], so an empty file is one empty last chunk) and is the only one flagged last,
//! so a stream cut short, at a chunk boundary or not, never authenticates. Each chunk's
//! associated data is the file's plaintext path: a blob copied over another path's name
//! does not decrypt either.

use super::{CryptError, Keys};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use rand::RngCore;
use std::fmt;
use std::io::Write;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Poly1305's tag after each chunk.
pub const TAG: usize = 16;
const MAGIC: &[u8; 8] = b"DLGDENC1";
const PREFIX_LEN: usize = 19;
/// The magic and the nonce prefix.
pub const HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN;
/// The most plaintext one blob holds: 2³² chunks, the last one short (256 TiB less a
/// byte). [`Encryptor::encrypt_chunks`] never reuses a chunk index: past this it stops,
/// and the blob it was writing does not decrypt. Callers refuse larger files.
pub const MAX_PLAIN_LEN: u64 = (1u64 << 32) * CHUNK as u64 - 1;

const SEALED_CHUNK: usize = CHUNK + TAG;
const DOMAIN: &[u8] = b"devlogd v1 content\0";

type Stream = StreamBE32<XChaCha20Poly1305>;

/// The encrypted size of `plain_len` bytes of plaintext: header, full chunks, and the
/// final short chunk, each with its tag.
pub fn encrypted_len(plain_len: u64) -> u64 {
    let chunks = plain_len / CHUNK as u64 + 1;
    (HEADER_LEN as u64)
        .saturating_add(plain_len)
        .saturating_add(chunks.saturating_mul(TAG as u64))
}

/// The plaintext size of a blob of `encrypted_len` bytes, or `None` when no plaintext
/// length gives that size (the blob is not one of ours, or is cut short).
pub fn plain_len(encrypted_len: u64) -> Option<u64> {
    let body = encrypted_len.checked_sub(HEADER_LEN as u64)?;
    let full = body / SEALED_CHUNK as u64;
    let last = (body % SEALED_CHUNK as u64).checked_sub(TAG as u64)?;
    if full >= 1 << 32 {
        return None;
    }
    Some(full * CHUNK as u64 + last)
}

fn associated_data(path: &str) -> Vec<u8> {
    super::bound_to(DOMAIN, path)
}

impl Keys {
    fn content_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(GenericArray::from_slice(&self.content))
    }

    /// An encryptor for the contents of `path`, with a fresh random nonce prefix: encrypt
    /// each version of a file with a new one.
    pub fn encryptor(&self, path: &str) -> Encryptor {
        let mut prefix = [0u8; PREFIX_LEN];
        rand::rng().fill_bytes(&mut prefix);
        Encryptor {
            stream: Stream::from_aead(self.content_cipher(), GenericArray::from_slice(&prefix)),
            prefix,
            aad: associated_data(path),
        }
    }

    /// A decryptor for a blob holding the contents of `path`.
    pub fn decryptor(&self, path: &str) -> Decryptor {
        Decryptor {
            state: State::Header {
                cipher: self.content_cipher(),
                header: [0; HEADER_LEN],
                filled: 0,
            },
            aad: associated_data(path),
            buffer: Vec::new(),
        }
    }
}

/// Encrypts one blob. Stateless past its creation, so blocks of a file may be encrypted
/// in parallel from an `Arc<Encryptor>`.
pub struct Encryptor {
    stream: Stream,
    prefix: [u8; PREFIX_LEN],
    aad: Vec<u8>,
}

impl Encryptor {
    /// The blob's first bytes.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[MAGIC.len()..].copy_from_slice(&self.prefix);
        header
    }

    /// `plain` sealed as consecutive chunks from chunk index `first_chunk` (no header).
    /// Unless `is_end`, `plain.len()` must be a multiple of [`CHUNK`] (a short chunk that
    /// is not the end makes a blob that does not decrypt). With `is_end` the final chunk,
    /// short or empty, is flagged last: a block whose length is a multiple of `CHUNK` is
    /// followed by an empty last chunk, so a 4 MiB end block gives the same bytes as that
    /// block without `is_end` and then `encrypt_chunks(first + 64, &[], true)`. Chunks
    /// past [`MAX_PLAIN_LEN`] are left out rather than reuse a nonce.
    pub fn encrypt_chunks(&self, first_chunk: u32, plain: &[u8], is_end: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + (plain.len() / CHUNK + 1) * TAG);
        self.encrypt_chunks_into(first_chunk, plain, is_end, &mut out);
        out
    }

    /// [`Encryptor::encrypt_chunks`] appended to `out` (after the header, for a blob's
    /// first block: no second copy of the block).
    pub fn encrypt_chunks_into(
        &self,
        first_chunk: u32,
        plain: &[u8],
        is_end: bool,
        out: &mut Vec<u8>,
    ) {
        let mut sealed = Vec::with_capacity(SEALED_CHUNK);
        let mut index = u64::from(first_chunk);
        let mut rest = plain;
        loop {
            let last = is_end && rest.len() < CHUNK;
            if rest.is_empty() && !last {
                break;
            }
            let Ok(position) = u32::try_from(index) else {
                break;
            };
            let (chunk, after) = rest.split_at(rest.len().min(CHUNK));
            sealed.clear();
            sealed.extend_from_slice(chunk);
            self.stream
                .encrypt_in_place(position, last, &self.aad, &mut sealed)
                .expect(
                    "XChaCha20-Poly1305 refuses only messages above 256 GiB; a chunk is 64 KiB",
                );
            out.extend_from_slice(&sealed);
            rest = after;
            index += 1;
            if last {
                break;
            }
        }
    }

    /// A whole blob, header and all chunks, for a file read whole.
    pub fn encrypt_all(&self, plain: &[u8]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN + plain.len() + (plain.len() / CHUNK + 1) * TAG);
        out.extend_from_slice(&self.header());
        self.encrypt_chunks_into(0, plain, true, &mut out);
        out
    }
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor").finish_non_exhaustive()
    }
}

/// Why decrypting a blob stopped: the content did not authenticate, or writing the
/// plaintext out failed. Either way nothing unauthenticated was written, and every later
/// call on the same [`Decryptor`] fails with [`CryptError::Corrupt`].
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error("could not write the decrypted content: {0}")]
    Write(#[source] std::io::Error),
}

enum State {
    /// Reading the header.
    Header {
        cipher: XChaCha20Poly1305,
        header: [u8; HEADER_LEN],
        filled: usize,
    },
    /// Reading chunks; `next` is the index of the chunk being buffered.
    Body { stream: Stream, next: u64 },
    /// An error was returned.
    Failed,
}

/// Decrypts one blob fed in pieces of any size, holding at most one sealed chunk. Writes
/// a chunk's plaintext only once it authenticates; the final chunk only at
/// [`Decryptor::finish`], once the stream is known to be whole.
pub struct Decryptor {
    state: State,
    aad: Vec<u8>,
    /// Part of the chunk being read.
    buffer: Vec<u8>,
}

impl Decryptor {
    /// Takes the next `data` of the blob, writing out every chunk it completes.
    pub fn update(&mut self, data: &[u8], out: &mut dyn Write) -> Result<(), DecryptError> {
        let result = self.take(data, out);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Ends the blob: decrypts the final chunk as the last one. A blob cut short (at a
    /// chunk boundary or within the header) or whose final chunk is not flagged last is
    /// [`CryptError::Corrupt`].
    pub fn finish(mut self, out: &mut dyn Write) -> Result<(), DecryptError> {
        let State::Body { stream, next } = &self.state else {
            return Err(CryptError::Corrupt.into());
        };
        // A full chunk is never the last one; it was decrypted as soon as it was read.
        if self.buffer.len() < TAG {
            return Err(CryptError::Corrupt.into());
        }
        let position = u32::try_from(*next).map_err(|_| CryptError::Corrupt)?;
        stream
            .decrypt_in_place(position, true, &self.aad, &mut self.buffer)
            .map_err(|_| CryptError::Corrupt)?;
        out.write_all(&self.buffer).map_err(DecryptError::Write)
    }

    fn take(&mut self, mut data: &[u8], out: &mut dyn Write) -> Result<(), DecryptError> {
        if let State::Header {
            cipher,
            header,
            filled,
        } = &mut self.state
        {
            let n = data.len().min(HEADER_LEN - *filled);
            header[*filled..*filled + n].copy_from_slice(&data[..n]);
            *filled += n;
            data = &data[n..];
            if *filled < HEADER_LEN {
                return Ok(());
            }
            if &header[..MAGIC.len()] != MAGIC {
                return Err(CryptError::Corrupt.into());
            }
            let prefix = GenericArray::from_slice(&header[MAGIC.len()..]);
            let stream = Stream::from_aead(cipher.clone(), prefix);
            self.state = State::Body { stream, next: 0 };
            self.buffer.reserve_exact(SEALED_CHUNK);
        }
        let State::Body { stream, next } = &mut self.state else {
            return Err(CryptError::Corrupt.into());
        };
        while !data.is_empty() {
            let n = data.len().min(SEALED_CHUNK - self.buffer.len());
            self.buffer.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buffer.len() == SEALED_CHUNK {
                let position = u32::try_from(*next).map_err(|_| CryptError::Corrupt)?;
                stream
                    .decrypt_in_place(position, false, &self.aad, &mut self.buffer)
                    .map_err(|_| CryptError::Corrupt)?;
                out.write_all(&self.buffer).map_err(DecryptError::Write)?;
                self.buffer.clear();
                *next += 1;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::tests::keys;
    use super::*;
    use rand::Rng;

    const MARKER: &[u8] = b"PLAINTEXT-MARKER-devlogd";

    fn sample(len: usize) -> Vec<u8> {
        let mut plain = vec![0u8; len];
        rand::rng().fill_bytes(&mut plain);
        // Repeat a marker so it would show if anything leaked.
        for at in (0..len.saturating_sub(MARKER.len())).step_by(4096) {
            plain[at..at + MARKER.len()].copy_from_slice(MARKER);
        }
        plain
    }

    /// Decrypts `blob` fed in random-sized pieces; the error, if any, and what was written.
    fn decrypt(keys: &Keys, path: &str, blob: &[u8]) -> (Result<(), DecryptError>, Vec<u8>) {
        let mut dec = keys.decryptor(path);
        let mut out = Vec::new();
        let mut rng = rand::rng();
        let mut rest = blob;
        while !rest.is_empty() {
            let n = rng.random_range(1..=100 * 1024).min(rest.len());
            if let Err(e) = dec.update(&rest[..n], &mut out) {
                return (Err(e), out);
            }
            rest = &rest[n..];
        }
        (dec.finish(&mut out), out)
    }

    fn is_corrupt(result: &Result<(), DecryptError>) -> bool {
        matches!(result, Err(DecryptError::Crypt(CryptError::Corrupt)))
    }

    const SIZES: &[usize] = &[
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        3 * CHUNK,
        4 * 1024 * 1024 + 5,
    ];

    #[test]
    fn contents_round_trip_fed_in_any_pieces() {
        let keys = keys();
        for &len in SIZES {
            let plain = sample(len);
            let blob = keys.encryptor("dir/file.md").encrypt_all(&plain);
            assert_eq!(blob.len() as u64, encrypted_len(len as u64), "{len}");
            assert_eq!(plain_len(blob.len() as u64), Some(len as u64));
            assert_eq!(&blob[..8], MAGIC);
            assert!(
                !blob.windows(MARKER.len()).any(|w| w == MARKER),
                "the plaintext shows in the blob of {len}"
            );
            let (result, out) = decrypt(&keys, "dir/file.md", &blob);
            assert!(result.is_ok(), "{len}: {result:?}");
            assert!(out == plain, "{len}");
            // Byte by byte across the header and the first chunk boundary too.
            if len <= CHUNK + 1 {
                let mut dec = keys.decryptor("dir/file.md");
                let mut out = Vec::new();
                for b in &blob {
                    dec.update(std::slice::from_ref(b), &mut out).unwrap();
                }
                dec.finish(&mut out).unwrap();
                assert!(out == plain, "{len} byte by byte");
            }
        }
        assert_eq!(encrypted_len(0), (HEADER_LEN + TAG) as u64);
    }

    #[test]
    fn blocks_encrypted_apart_and_in_parallel_make_one_blob() {
        let keys = keys();
        const BLOCK: usize = 4 * 1024 * 1024;
        for len in [2 * BLOCK, BLOCK + 5, 100] {
            let plain = sample(len);
            let enc = std::sync::Arc::new(keys.encryptor("big.bin"));
            let blocks: Vec<&[u8]> = plain.chunks(BLOCK).collect();
            let sealed: Vec<Vec<u8>> = std::thread::scope(|s| {
                let handles: Vec<_> = blocks
                    .iter()
                    .enumerate()
                    .map(|(i, block)| {
                        let enc = enc.clone();
                        let is_end = i + 1 == blocks.len();
                        s.spawn(move || {
                            enc.encrypt_chunks((i * BLOCK / CHUNK) as u32, block, is_end)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut blob = enc.header().to_vec();
            for block in &sealed {
                blob.extend_from_slice(block);
            }
            assert_eq!(blob.len() as u64, encrypted_len(len as u64), "{len}");
            assert!(
                blob == enc.encrypt_all(&plain),
                "{len}: blocks equal the whole"
            );
            let (result, out) = decrypt(&keys, "big.bin", &blob);
            assert!(result.is_ok(), "{len}: {result:?}");
            assert!(out == plain);
        }
        // An end block of whole chunks equals that block and then an empty end.
        let enc = keys.encryptor("x");
        let plain = sample(2 * CHUNK);
        let mut apart = enc.encrypt_chunks(0, &plain, false);
        apart.extend(enc.encrypt_chunks(2, &[], true));
        assert_eq!(apart, enc.encrypt_chunks(0, &plain, true));
    }

    #[test]
    fn lengths_invert() {
        for len in [
            0u64,
            1,
            15,
            16,
            17,
            CHUNK as u64 - 1,
            CHUNK as u64,
            1 << 30,
            MAX_PLAIN_LEN,
        ] {
            assert_eq!(plain_len(encrypted_len(len)), Some(len), "{len}");
        }
        for bad in [
            0u64,
            26,
            27,
            42,
            27 + SEALED_CHUNK as u64,
            27 + SEALED_CHUNK as u64 + 15,
        ] {
            assert_eq!(plain_len(bad), None, "{bad}");
        }
        assert_eq!(plain_len(43), Some(0));
        assert_eq!(plain_len(encrypted_len(MAX_PLAIN_LEN) + 1), None);
        // Every encrypted length maps back to at most one plaintext length.
        for e in 0..3 * SEALED_CHUNK as u64 {
            if let Some(p) = plain_len(e) {
                assert_eq!(encrypted_len(p), e);
            }
        }
    }

    #[test]
    fn any_flipped_byte_is_corrupt_and_nothing_unauthenticated_is_written() {
        let keys = keys();
        let plain = sample(3 * CHUNK + 100);
        let blob = keys.encryptor("f").encrypt_all(&plain);
        let chunk_of = |at: usize| at.saturating_sub(HEADER_LEN) / SEALED_CHUNK;
        let positions = [
            0,
            7,
            8,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + 1000,
            HEADER_LEN + SEALED_CHUNK - 1, // chunk 0's tag
            HEADER_LEN + SEALED_CHUNK + 5,
            HEADER_LEN + 2 * SEALED_CHUNK - 8, // chunk 1's tag
            HEADER_LEN + 3 * SEALED_CHUNK + 3,
            blob.len() - 1,
        ];
        for at in positions {
            let mut bad = blob.clone();
            bad[at] ^= 0x01;
            let (result, out) = decrypt(&keys, "f", &bad);
            assert!(is_corrupt(&result), "flip at {at}: {result:?}");
            let authentic = if at < HEADER_LEN {
                0
            } else {
                chunk_of(at) * CHUNK
            };
            assert!(out.len() <= authentic, "flip at {at} wrote {}", out.len());
            assert!(out == plain[..out.len()], "flip at {at}");
            if at < HEADER_LEN + SEALED_CHUNK {
                assert!(out.is_empty(), "flip at {at} wrote {}", out.len());
            }
        }
    }

    #[test]
    fn cut_short_swapped_or_moved_blobs_are_corrupt() {
        let keys = keys();
        let plain = sample(3 * CHUNK + 10);
        let blob = keys.encryptor("a/path").encrypt_all(&plain);
        // Cut at each chunk boundary, within a chunk, within the header, to nothing.
        for cut in [
            HEADER_LEN + 3 * SEALED_CHUNK,
            HEADER_LEN + 2 * SEALED_CHUNK,
            HEADER_LEN + SEALED_CHUNK,
            HEADER_LEN,
            HEADER_LEN + 3 * SEALED_CHUNK + 20,
            blob.len() - 1,
            HEADER_LEN + 10,
            HEADER_LEN + TAG - 1,
            10,
            0,
        ] {
            let (result, _) = decrypt(&keys, "a/path", &blob[..cut]);
            assert!(is_corrupt(&result), "cut at {cut}: {result:?}");
        }
        // An exact multiple cut where its empty last chunk begins.
        let whole = keys.encryptor("a/path").encrypt_all(&sample(2 * CHUNK));
        let (result, out) = decrypt(&keys, "a/path", &whole[..whole.len() - TAG]);
        assert!(is_corrupt(&result));
        assert_eq!(out.len(), 2 * CHUNK);
        // Extra bytes after the end.
        let mut longer = blob.clone();
        longer.push(0);
        assert!(is_corrupt(&decrypt(&keys, "a/path", &longer).0));
        // Chunks 0 and 1 swapped.
        let mut swapped = blob.clone();
        let (c0, c1) = (HEADER_LEN, HEADER_LEN + SEALED_CHUNK);
        let first: Vec<u8> = blob[c0..c1].to_vec();
        swapped.copy_within(c1..c1 + SEALED_CHUNK, c0);
        swapped[c1..c1 + SEALED_CHUNK].copy_from_slice(&first);
        let (result, out) = decrypt(&keys, "a/path", &swapped);
        assert!(is_corrupt(&result));
        assert!(out.is_empty());
        // Another path, another key.
        let (result, out) = decrypt(&keys, "a/other", &blob);
        assert!(is_corrupt(&result));
        assert!(out.is_empty());
        assert!(is_corrupt(
            &decrypt(&super::super::keys::tests::keys(), "a/path", &blob).0
        ));
        // A small blob under another name.
        let small = keys.encryptor("x").encrypt_all(b"hello");
        assert!(is_corrupt(&decrypt(&keys, "y", &small).0));
        assert!(is_corrupt(
            &decrypt(&keys, "x", b"DLGDENC2 and more bytes than a header holds").0
        ));
    }

    #[test]
    fn nonce_prefixes_are_fresh() {
        let keys = keys();
        let (a, b) = (keys.encryptor("p"), keys.encryptor("p"));
        assert_ne!(a.header(), b.header());
        assert_ne!(a.encrypt_all(b"same"), b.encrypt_all(b"same"));
    }

    #[test]
    fn a_failed_decryptor_stays_failed_and_write_errors_surface() {
        struct Refuses;
        impl Write for Refuses {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let keys = keys();
        let blob = keys.encryptor("w").encrypt_all(&sample(CHUNK + 1));
        let mut dec = keys.decryptor("w");
        assert!(matches!(
            dec.update(&blob, &mut Refuses),
            Err(DecryptError::Write(_))
        ));
        let mut out = Vec::new();
        assert!(is_corrupt(&dec.update(&[], &mut out)));
        assert!(is_corrupt(&dec.finish(&mut out)));
        assert!(out.is_empty());
    }

    #[test]
    fn encryptors_are_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Encryptor>();
        send_sync::<Keys>();
        fn send<T: Send>() {}
        send::<Decryptor>();
    }
}
