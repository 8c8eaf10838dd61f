//! A download's sink that decrypts as the bytes come: only authenticated chunks reach the
//! sink below, and the plaintext is hashed on its way for the sealed MD5.

use crate::remote::crypt::{DecryptError, Decryptor};
use md5::{Digest, Md5};
use std::io::Write;

/// Why a decrypted download was not accepted.
pub enum Failed {
    /// The bytes did not authenticate (or the stream was cut short).
    Corrupt,
    Write(std::io::Error),
}

/// Decrypts into `out`, hashing the plaintext.
pub struct Decrypting<'a> {
    decryptor: Option<Decryptor>,
    out: Hashing<'a>,
    refused: bool,
}

/// The sink below, with the plaintext's MD5 taken on the way.
struct Hashing<'a> {
    out: super::Sink<'a>,
    hasher: Md5,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<'a> Decrypting<'a> {
    pub fn new(decryptor: Decryptor, out: super::Sink<'a>) -> Self {
        Decrypting {
            decryptor: Some(decryptor),
            out: Hashing {
                out,
                hasher: Md5::new(),
            },
            refused: false,
        }
    }

    /// Whether the bytes failed to authenticate (what made the download stop).
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// The end of the stream: the held-back last chunk authenticated and written; the
    /// plaintext's MD5.
    pub fn finish(mut self) -> Result<[u8; 16], Failed> {
        if self.refused {
            return Err(Failed::Corrupt);
        }
        let decryptor = self.decryptor.take().ok_or(Failed::Corrupt)?;
        decryptor.finish(&mut self.out).map_err(failed)?;
        Ok(self.out.hasher.finalize().into())
    }
}

fn failed(e: DecryptError) -> Failed {
    match e {
        DecryptError::Write(e) => Failed::Write(e),
        DecryptError::Crypt(_) => Failed::Corrupt,
    }
}

impl Write for Decrypting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(decryptor) = self.decryptor.as_mut() else {
            return Err(std::io::Error::other("the download already ended"));
        };
        match decryptor.update(buf, &mut self.out) {
            Ok(()) => Ok(buf.len()),
            Err(DecryptError::Write(e)) => Err(e),
            Err(DecryptError::Crypt(e)) => {
                self.refused = true;
                Err(std::io::Error::other(format!("refused the download: {e}")))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
