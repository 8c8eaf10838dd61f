//! Small file-system helpers shared by the pipeline and the remotes.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether a local I/O error can clear by itself, so the path should stay pending and be
/// tried again later rather than reported as failed for good: out of descriptors or
/// memory, interrupted, busy, or a full / read-only filesystem that someone may fix.
pub fn is_transient_io(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOMEM
                | libc::EAGAIN
                | libc::EINTR
                | libc::EBUSY
                | libc::ENOBUFS
                | libc::ETXTBSY
                | libc::ENOSPC
                | libc::EDQUOT
                | libc::EROFS
        )
    ) || matches!(
        e.kind(),
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
    )
}

/// Whether an error means the path is simply no longer a candidate: gone, or replaced by
/// something that is not a regular file (a symlink is refused by `O_NOFOLLOW` with ELOOP).
pub fn is_gone(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENXIO)
    )
}

/// Open a regular file for reading without following a symlink in its place and without
/// blocking on a FIFO; anything but a regular file is refused with ELOOP-like `is_gone`.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::from_raw_os_error(libc::ENXIO));
    }
    Ok(file)
}

/// Streamed MD5 and length of everything `reader` yields.
pub fn md5_of_reader(mut reader: impl Read) -> std::io::Result<([u8; 16], u64)> {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((hasher.finalize().into(), size));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
}

/// Streamed MD5 of a regular file (never through a symlink).
pub fn md5_of_file(path: &Path) -> std::io::Result<[u8; 16]> {
    md5_of_reader(open_regular(path)?).map(|(md5, _)| md5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_clear_are_transient_and_vanished_files_are_gone() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        for n in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOMEM,
            libc::EAGAIN,
            libc::ENOSPC,
        ] {
            assert!(is_transient_io(&e(n)), "{n}");
        }
        for n in [libc::EACCES, libc::ENOENT, libc::EISDIR] {
            assert!(!is_transient_io(&e(n)), "{n}");
        }
        assert!(is_gone(&e(libc::ENOENT)));
        assert!(is_gone(&e(libc::ELOOP)));
        assert!(!is_gone(&e(libc::EMFILE)));
    }

    #[test]
    fn open_regular_refuses_symlinks_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, "secret").unwrap();
        let link = dir.path().join("n.md");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(is_gone(&open_regular(&link).unwrap_err()));
        let fifo = dir.path().join("f.md");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(
            is_gone(&open_regular(&fifo).unwrap_err()),
            "no hang, refused"
        );
        assert_eq!(
            md5_of_file(&target).unwrap(),
            md5_of_reader(&b"secret"[..]).unwrap().0
        );
    }
}
