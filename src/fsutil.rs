//! Small file-system helpers shared by the pipeline and the remotes.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// A file that holds secrets (the credentials file, a config file with a SAS) must be this
/// user's and 0600; says how to fix it otherwise. A missing file is fine.
#[cfg(unix)]
pub fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if meta.uid() != uid {
        return Err(format!(
            "{} holds secrets but belongs to uid {}, not to you (uid {uid}): run `chown {uid} {}`",
            path.display(),
            meta.uid(),
            path.display()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} holds secrets but its mode is {mode:o}, readable by others: run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private(_: &Path) -> Result<(), String> {
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

/// Relative `/`-separated path of `path` under `root`, if it is valid UTF-8.
pub fn relative(root: &Path, path: &Path) -> Result<String, String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| format!("{} is outside the root", path.display()))?;
    let mut out = String::new();
    for comp in rel.components() {
        let s = comp
            .as_os_str()
            .to_str()
            .ok_or_else(|| format!("{} has a name that is not valid UTF-8", rel.display()))?;
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
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: a NUL-terminated path; the returned descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        Ok(Beneath {
            fd: owned(fd)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Open the regular file at `rel` (`/`-separated) for reading: no symlink anywhere, no
    /// waiting on a FIFO, nothing but a regular file (ENXIO otherwise, see [`is_gone`]).
    pub fn open_file(&self, rel: &str) -> std::io::Result<std::fs::File> {
        let fd = self.resolve(rel, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        // SAFETY: a descriptor we own.
        let file = unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
        if !file.metadata()?.file_type().is_file() {
            return Err(std::io::Error::from_raw_os_error(libc::ENXIO));
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
            // SAFETY: duplicating a descriptor we own.
            let fd = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
            return Ok(Beneath {
                fd: owned(fd)?,
                path,
            });
        }
        if !create {
            let fd = self.resolve(rel, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            return Ok(Beneath { fd, path });
        }
        let mut dir = self.open_dir("", false)?;
        for comp in rel.split('/') {
            let c = component(comp)?;
            // SAFETY: a directory descriptor we own and a NUL-terminated name.
            let rc = unsafe { libc::mkdirat(dir.fd.as_raw_fd(), c.as_ptr(), 0o700) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
            }
            // SAFETY: as above; O_NOFOLLOW refuses a symlink planted at the name.
            let fd = unsafe {
                libc::openat(
                    dir.fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            let fd = owned(fd).map_err(|e| name_the_link(dir.fd.as_raw_fd(), &c, e))?;
            dir = Beneath {
                fd,
                path: dir.path.join(comp),
            };
        }
        Ok(dir)
    }

    /// `openat` of one name directly in this directory, never through a symlink.
    pub fn open_here(&self, name: &str, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
        let c = component(name)?;
        // SAFETY: a directory descriptor we own and a NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        owned(fd)
    }

    /// Remove one name directly in this directory (not a directory).
    pub fn unlink_here(&self, name: &str) -> std::io::Result<()> {
        let c = component(name)?;
        // SAFETY: as above.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Rename `from` in this directory to `to` in `dest` (both single names).
    pub fn rename_to(&self, from: &str, dest: &Beneath, to: &str) -> std::io::Result<()> {
        let (from, to) = (component(from)?, component(to)?);
        // SAFETY: directory descriptors we own and NUL-terminated names.
        let rc = unsafe {
            libc::renameat(
                self.fd.as_raw_fd(),
                from.as_ptr(),
                dest.fd.as_raw_fd(),
                to.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Flush the directory itself (durability of a rename); best effort.
    pub fn sync(&self) {
        // SAFETY: a descriptor we own.
        unsafe { libc::fsync(self.fd.as_raw_fd()) };
    }

    /// The names in this directory.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        let dir = self.open_dir("", false)?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(dir.fd);
        // SAFETY: fdopendir takes ownership of a directory descriptor; closedir below.
        let dirp = unsafe { libc::fdopendir(raw) };
        if dirp.is_null() {
            // SAFETY: fdopendir failed, so the descriptor is still ours to close.
            unsafe { libc::close(raw) };
            return Err(std::io::Error::last_os_error());
        }
        let mut names = Vec::new();
        loop {
            // SAFETY: a valid DIR*; the entry is read before the next readdir call.
            let entry = unsafe { libc::readdir(dirp) };
            if entry.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated.
            let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
            if let Ok(name) = name.to_str()
                && name != "."
                && name != ".."
            {
                names.push(name.to_string());
            }
        }
        // SAFETY: a valid DIR* opened above.
        unsafe { libc::closedir(dirp) };
        Ok(names)
    }

    fn resolve(&self, rel: &str, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
        if rel.is_empty() || rel.starts_with('/') {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        #[cfg(target_os = "linux")]
        match openat2(&self.fd, rel, flags, mode) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {}
            // With RESOLVE_NO_SYMLINKS a symlink anywhere is ELOOP, as O_NOFOLLOW says.
            other => return other,
        }
        let mut parts = rel.split('/').peekable();
        let mut dir: Option<OwnedFd> = None;
        while let Some(comp) = parts.next() {
            let at = dir.as_ref().map_or(self.fd.as_raw_fd(), |d| d.as_raw_fd());
            let c = component(comp)?;
            let last = parts.peek().is_none();
            let f = if last {
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC
            } else {
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC
            };
            // SAFETY: a directory descriptor we own and a NUL-terminated name.
            let fd = unsafe { libc::openat(at, c.as_ptr(), f, mode as libc::c_uint) };
            dir = Some(owned(fd).map_err(|e| name_the_link(at, &c, e))?);
        }
        dir.ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
    }
}

#[cfg(target_os = "linux")]
fn openat2(dir: &OwnedFd, rel: &str, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    let c = cstr(rel.as_bytes())?;
    // SAFETY: open_how is plain data; zeroed is a valid value to fill in.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = mode as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the syscall reads `how` (size given) and the NUL-terminated path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    owned(fd as i32)
}

/// `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with ENOTDIR; say ELOOP, as for files,
/// so callers see "a symlink is in the way".
fn name_the_link(dir: i32, name: &CString, e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() != Some(libc::ENOTDIR) {
        return e;
    }
    // SAFETY: stat is plain data; fstatat fills it from a descriptor and a name we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK {
        std::io::Error::from_raw_os_error(libc::ELOOP)
    } else {
        e
    }
}

fn owned(fd: i32) -> std::io::Result<OwnedFd> {
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor returned by the kernel, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstr(bytes: &[u8]) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// One path component: no `/`, not empty, not `.` or `..`.
fn component(name: &str) -> std::io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    cstr(name.as_bytes())
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
    fn open_file_refuses_symlinks_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, "secret").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("n.md")).unwrap();
        let fifo = dir.path().join("f.md");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
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
    }
}
