//! Small file-system helpers shared by the pipeline and the remotes.

use rustix::fs::{self, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Whether a local I/O error can clear by itself, so the path should stay pending and be
/// tried again later rather than reported as failed for good: out of descriptors or
/// memory, interrupted, busy, or a full / read-only filesystem that someone may fix.
pub fn is_transient_io(e: &std::io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(
            Errno::MFILE
                | Errno::NFILE
                | Errno::NOMEM
                | Errno::AGAIN
                | Errno::INTR
                | Errno::BUSY
                | Errno::NOBUFS
                | Errno::TXTBSY
                | Errno::NOSPC
                | Errno::DQUOT
                | Errno::ROFS
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
        Errno::from_io_error(e),
        Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NXIO)
    )
}

/// Why a file that holds secrets may not be used, with the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum NotPrivate {
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds secrets but belongs to uid {owner}, not to you (uid {uid}): run `chown {uid} {}`", .path.display(), .path.display())]
    NotYours { path: PathBuf, owner: u32, uid: u32 },
    #[error("{} holds secrets but its mode is {mode:o}, readable by others: run `chmod 600 {}`", .path.display(), .path.display())]
    OpenToOthers { path: PathBuf, mode: u32 },
}

/// A file that holds secrets (the credentials file, a config file with a SAS) must be this
/// user's and 0600; says how to fix it otherwise. A missing file is fine.
#[cfg(unix)]
pub fn check_private(path: &Path) -> Result<(), NotPrivate> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(NotPrivate::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid {
        return Err(NotPrivate::NotYours {
            path: path.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NotPrivate::OpenToOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private(_: &Path) -> Result<(), NotPrivate> {
    Ok(())
}

/// Create `dir` and any missing parents, each 0700 whatever the umask: the journal, the
/// state index and the mirror are private.
pub fn private_dir_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Why a path has no name under the root.
#[derive(Debug, thiserror::Error)]
pub enum NotRelative {
    #[error("{} is outside the root", .0.display())]
    Outside(PathBuf),
    #[error("{} has a name that is not valid UTF-8", .0.display())]
    NotUtf8(PathBuf),
}

/// Relative `/`-separated path of `path` under `root`, if it is valid UTF-8.
pub fn relative(root: &Path, path: &Path) -> Result<String, NotRelative> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| NotRelative::Outside(path.to_path_buf()))?;
    let mut out = String::new();
    for comp in rel.components() {
        let s = comp
            .as_os_str()
            .to_str()
            .ok_or_else(|| NotRelative::NotUtf8(rel.to_path_buf()))?;
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(s);
    }
    Ok(out)
}

/// Lower-case hex of some bytes (MD5s in ETags and marks, ids).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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

/// An open directory, and every path below it resolved without leaving it and without
/// following a symlink at any component (someone who can write below it cannot redirect
/// a read or a write elsewhere). On Linux one `openat2` with `RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS`; elsewhere (or where `openat2` is refused) component by component
/// with `O_NOFOLLOW`.
pub struct Beneath {
    fd: OwnedFd,
    path: PathBuf,
}

impl Beneath {
    /// Open `path` itself (a symlink *to* the top directory is followed: it is the
    /// configuration's choice).
    pub fn open(path: &Path) -> std::io::Result<Beneath> {
        let fd = fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Open the regular file at `rel` (`/`-separated) for reading: no symlink anywhere, no
    /// waiting on a FIFO, nothing but a regular file (ENXIO otherwise, see [`is_gone`]).
    pub fn open_file(&self, rel: &str) -> std::io::Result<std::fs::File> {
        let file = std::fs::File::from(self.resolve(rel, OFlags::RDONLY | OFlags::NONBLOCK, 0)?);
        if !file.metadata()?.file_type().is_file() {
            return Err(Errno::NXIO.into());
        }
        Ok(file)
    }

    /// Open (or with `create`, make, 0700) the directory at `rel`; `""` is this one.
    pub fn open_dir(&self, rel: &str, create: bool) -> std::io::Result<Beneath> {
        let path = if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        };
        if rel.is_empty() {
            let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?;
            return Ok(Beneath { fd, path });
        }
        // Mostly the directory is there: one open, not a mkdir and an open per component.
        match self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, 0) {
            Ok(fd) => return Ok(Beneath { fd, path }),
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut dir = self.open_dir("", false)?;
        for comp in rel.split('/') {
            let c = component(comp)?;
            match fs::mkdirat(&dir.fd, c, Mode::RWXU) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            // O_NOFOLLOW refuses a symlink planted at the name.
            let fd = fs::openat(
                &dir.fd,
                c,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| name_the_link(&dir.fd, c, e))?;
            dir = Beneath {
                fd,
                path: dir.path.join(comp),
            };
        }
        Ok(dir)
    }

    /// `openat` of one name directly in this directory, never through a symlink.
    pub fn open_here(&self, name: &str, flags: OFlags, mode: u32) -> std::io::Result<OwnedFd> {
        let fd = fs::openat(
            &self.fd,
            component(name)?,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(mode as fs::RawMode),
        )?;
        Ok(fd)
    }

    /// Remove one name directly in this directory (not a directory).
    pub fn unlink_here(&self, name: &str) -> std::io::Result<()> {
        Ok(fs::unlinkat(&self.fd, component(name)?, AtFlags::empty())?)
    }

    /// Rename `from` in this directory to `to` in `dest` (both single names).
    pub fn rename_to(&self, from: &str, dest: &Beneath, to: &str) -> std::io::Result<()> {
        Ok(fs::renameat(
            &self.fd,
            component(from)?,
            &dest.fd,
            component(to)?,
        )?)
    }

    /// Flush the directory itself (durability of a rename); best effort.
    pub fn sync(&self) {
        let _ = fs::fsync(&self.fd);
    }

    /// The names in this directory.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        // Reads through a duplicate of this descriptor, from the start: not by reopening
        // ".", which fails once the directory is unreadable or removed.
        let mut dir = fs::Dir::new(rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?)?;
        dir.rewind();
        let mut names = Vec::new();
        // A read error ends the listing where it happened, as readdir's NULL does.
        for entry in dir.map_while(Result::ok) {
            if let Ok(name) = entry.file_name().to_str()
                && name != "."
                && name != ".."
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn resolve(&self, rel: &str, flags: OFlags, mode: u32) -> std::io::Result<OwnedFd> {
        if rel.is_empty() || rel.starts_with('/') {
            return Err(Errno::INVAL.into());
        }
        let mode = Mode::from_bits_truncate(mode as fs::RawMode);
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::ResolveFlags;
            let how =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match fs::openat2(&self.fd, rel, flags | OFlags::CLOEXEC, mode, how) {
                Err(Errno::NOSYS | Errno::PERM) => {}
                // With RESOLVE_NO_SYMLINKS a symlink anywhere is ELOOP, as O_NOFOLLOW says.
                other => return Ok(other?),
            }
        }
        let mut parts = rel.split('/').peekable();
        let mut dir: Option<OwnedFd> = None;
        while let Some(comp) = parts.next() {
            let at = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
            let c = component(comp)?;
            let f = if parts.peek().is_none() {
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC
            } else {
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
            };
            let fd = fs::openat(at, c, f, mode).map_err(|e| name_the_link(at, c, e))?;
            dir = Some(fd);
        }
        dir.ok_or_else(|| Errno::INVAL.into())
    }
}

/// `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with ENOTDIR; say ELOOP, as for files,
/// so callers see "a symlink is in the way".
fn name_the_link(dir: impl AsFd, name: &str, e: Errno) -> std::io::Error {
    if e != Errno::NOTDIR {
        return e.into();
    }
    match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if fs::FileType::from_raw_mode(st.st_mode) == fs::FileType::Symlink => {
            Errno::LOOP.into()
        }
        _ => e.into(),
    }
}

/// One path component: no `/`, not empty, not `.` or `..` (a NUL inside is EINVAL when
/// it is used, as any path with one).
fn component(name: &str) -> std::io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Errno::INVAL.into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_clear_are_transient_and_vanished_files_are_gone() {
        let e = |n: Errno| std::io::Error::from(n);
        for n in [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOMEM,
            Errno::AGAIN,
            Errno::NOSPC,
        ] {
            assert!(is_transient_io(&e(n)), "{n}");
        }
        for n in [Errno::ACCESS, Errno::NOENT, Errno::ISDIR] {
            assert!(!is_transient_io(&e(n)), "{n}");
        }
        assert!(is_gone(&e(Errno::NOENT)));
        assert!(is_gone(&e(Errno::LOOP)));
        assert!(!is_gone(&e(Errno::MFILE)));
    }

    #[test]
    fn open_file_refuses_symlinks_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, "secret").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("n.md")).unwrap();
        let fifo = dir.path().join("f.md");
        fs::mknodat(
            fs::CWD,
            &fifo,
            fs::FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        let b = Beneath::open(dir.path()).unwrap();
        assert!(is_gone(&b.open_file("n.md").unwrap_err()));
        assert!(
            is_gone(&b.open_file("f.md").unwrap_err()),
            "no hang, refused"
        );
        let read = md5_of_reader(b.open_file("secret").unwrap()).unwrap();
        assert_eq!(read, md5_of_reader(&b"secret"[..]).unwrap());
    }

    #[test]
    fn beneath_never_follows_a_symlink_at_any_component() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(top.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(top.join("real/a.md"), "a").unwrap();
        std::fs::write(outside.join("a.md"), "outside").unwrap();
        std::os::unix::fs::symlink(&outside, top.join("linked")).unwrap();
        let b = Beneath::open(&top).unwrap();
        let mut s = String::new();
        b.open_file("real/a.md")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "a");
        assert!(is_gone(&b.open_file("linked/a.md").unwrap_err()));
        assert!(b.open_file("../outside/a.md").is_err());
        assert!(
            b.open_dir("linked/sub", true).is_err(),
            "no directory made through a link"
        );
        assert!(!outside.join("sub").exists());
        let made = b.open_dir("new/deep", true).unwrap();
        assert_eq!(made.path(), top.join("new/deep"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(top.join("new/deep"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            b.open_dir("real", false).unwrap().names().unwrap(),
            vec!["a.md"]
        );
        // Listed through the descriptor held, also twice and once the directory is gone
        // (a sweep of a directory removed meanwhile finds nothing rather than failing).
        let held = b.open_dir("real", false).unwrap();
        assert_eq!(held.names().unwrap(), vec!["a.md"]);
        assert_eq!(held.names().unwrap(), vec!["a.md"]);
        std::fs::remove_file(top.join("real/a.md")).unwrap();
        std::fs::remove_dir(top.join("real")).unwrap();
        assert_eq!(held.names().unwrap(), Vec::<String>::new());
    }
}
