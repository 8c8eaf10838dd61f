//! Putting a downloaded file in place without ever replacing something that appeared
//! after the check: every rename is no-replace (`RENAME_NOREPLACE`, or `link` + `unlink`
//! where the file system lacks it), and a local file is moved aside only while it is still
//! the one that was checked. A kept local copy gets a name nobody can predict
//! (`NAME.local-<UTC stamp>-<random>.EXT`, keeping the extension so a push backs it up).

use crate::fsutil::Beneath;
use rustix::fs::{AtFlags, RenameFlags, linkat, renameat_with};
use std::io::ErrorKind;

/// What identifies the content of a local file at one moment: a write, a replacement or a
/// rename over it changes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Seen {
    pub fn of(meta: &std::fs::Metadata) -> Seen {
        use std::os::unix::fs::MetadataExt;
        let (size, mtime_ns) = crate::scan::stat_of(meta);
        Seen {
            dev: meta.dev(),
            ino: meta.ino(),
            size,
            mtime_ns,
            ctime_ns: crate::scan::ctime_of(meta),
        }
    }

    /// The same file with the same content; a rename changes only its ctime.
    /// Whether this is the file a scan saw (size, mtime and ctime: any write moves one).
    pub fn describes(&self, file: &crate::scan::LocalFile) -> bool {
        (self.size, self.mtime_ns, self.ctime_ns) == (file.size, file.mtime_ns, file.ctime_ns)
    }

    pub fn same_content(&self, other: &Seen) -> bool {
        (self.dev, self.ino, self.size, self.mtime_ns)
            == (other.dev, other.ino, other.size, other.mtime_ns)
    }
}

/// `from` → `to` in one directory, failing with `AlreadyExists` instead of replacing.
pub fn rename_new(dir: &Beneath, from: &str, to: &str) -> std::io::Result<()> {
    match renameat_with(dir.fd(), from, dir.fd(), to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // The file system has no RENAME_NOREPLACE (some network and FUSE ones): a link
        // cannot replace either.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            linkat(dir.fd(), from, dir.fd(), to, AtFlags::empty())?;
            // `from` replaced between the link and the unlink: that file is not ours to
            // remove; drop the link instead and let the caller look again.
            let inode = |name: &str| {
                rustix::fs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| (st.st_dev, st.st_ino))
            };
            if inode(from)? != inode(to)? {
                dir.unlink_here(to)?;
                return Err(ErrorKind::AlreadyExists.into());
            }
            dir.unlink_here(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// The stat of `name` in `dir` now (`None`: nothing regular there).
pub fn seen_now(dir: &Beneath, name: &str) -> std::io::Result<Option<Seen>> {
    match dir.open_file(name) {
        Ok(f) => Ok(Some(Seen::of(&f.metadata()?))),
        Err(e)
            if crate::fsutil::is_gone(&e)
                || rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::NOTDIR) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `n` random lowercase letters and digits, for names nobody can predict.
pub fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `notes.md` → `notes.local-20261203T101500Z-k3x9qa.md`; `Makefile` →
/// `Makefile.local-20261203T101500Z-k3x9qa`.
pub fn kept_name(name: &str, stamp: &str) -> String {
    let random = random_token(6);
    match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => format!("{}.local-{stamp}-{random}{}", &name[..i], &name[i..]),
        None => format!("{name}.local-{stamp}-{random}"),
    }
}

/// How placing a download ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed {
    /// The download is at `name`.
    New,
    /// The download is at `name`; the local file checked earlier was moved to `kept`.
    Replaced { kept: String },
    /// The name holds a local file that is not the one checked (it appeared or changed
    /// meanwhile): left as it is, the download dropped.
    LocalChanged,
    /// The local file changed while it was moved aside; it is kept as `kept` and the
    /// download was dropped.
    LocalMovedAside { kept: String },
}

/// Put the temporary file `tmp` in `dir` at `name`. `checked`: the local file found at
/// `name` when it was decided to replace it (`None`: there was none).
pub fn place(
    dir: &Beneath,
    tmp: &str,
    name: &str,
    checked: Option<Seen>,
    stamp: &str,
) -> std::io::Result<Placed> {
    let Some(checked) = checked else {
        return match rename_new(dir, tmp, name) {
            Ok(()) => Ok(Placed::New),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Placed::LocalChanged),
            Err(e) => Err(e),
        };
    };
    match seen_now(dir, name)? {
        Some(now) if now == checked => {}
        // Deleted meanwhile: the name is free (unless something else takes it first).
        None => return place(dir, tmp, name, None, stamp),
        Some(_) => return Ok(Placed::LocalChanged),
    }
    let kept = loop {
        let kept = kept_name(name, stamp);
        match rename_new(dir, name, &kept) {
            Ok(()) => break kept,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return place(dir, tmp, name, None, stamp);
            }
            Err(e) => return Err(e),
        }
    };
    // Written or replaced between the check and the move: the user's file goes back.
    if !seen_now(dir, &kept)?.is_some_and(|moved| moved.same_content(&checked)) {
        return match rename_new(dir, &kept, name) {
            Ok(()) => Ok(Placed::LocalChanged),
            Err(_) => Ok(Placed::LocalMovedAside { kept }),
        };
    }
    match rename_new(dir, tmp, name) {
        Ok(()) => Ok(Placed::Replaced { kept }),
        // A new local file took the name meanwhile: it stays; the checked one is kept aside.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Placed::LocalMovedAside { kept }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Beneath) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Beneath::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("tmp"), "remote").unwrap();
        (tmp, dir)
    }

    #[test]
    fn kept_names_keep_the_extension_and_are_unpredictable() {
        let a = kept_name("notes.md", "20261203T101500Z");
        assert!(a.starts_with("notes.local-20261203T101500Z-"), "{a}");
        assert!(a.ends_with(".md") && a.len() == "notes.local-20261203T101500Z-k3x9qa.md".len());
        assert_ne!(a, kept_name("notes.md", "20261203T101500Z"));
        let b = kept_name("Makefile", "S");
        assert!(
            b.starts_with("Makefile.local-S-") && !b.ends_with(".md"),
            "{b}"
        );
    }

    #[test]
    fn a_file_that_appeared_is_never_replaced() {
        let (tmp, dir) = setup();
        std::fs::write(tmp.path().join("n.md"), "user").unwrap();
        assert_eq!(
            place(&dir, "tmp", "n.md", None, "S").unwrap(),
            Placed::LocalChanged
        );
        assert_eq!(std::fs::read(tmp.path().join("n.md")).unwrap(), b"user");
    }

    #[test]
    fn a_file_written_after_the_check_is_kept() {
        let (tmp, dir) = setup();
        std::fs::write(tmp.path().join("n.md"), "old").unwrap();
        let checked = seen_now(&dir, "n.md").unwrap();
        std::fs::write(tmp.path().join("n.md"), "user's new words").unwrap();
        assert_eq!(
            place(&dir, "tmp", "n.md", checked, "S").unwrap(),
            Placed::LocalChanged
        );
        assert_eq!(
            std::fs::read(tmp.path().join("n.md")).unwrap(),
            b"user's new words"
        );
    }

    #[test]
    fn an_unchanged_file_is_moved_aside_and_replaced() {
        let (tmp, dir) = setup();
        std::fs::write(tmp.path().join("n.md"), "old").unwrap();
        let checked = seen_now(&dir, "n.md").unwrap();
        let Placed::Replaced { kept } = place(&dir, "tmp", "n.md", checked, "S").unwrap() else {
            panic!("not replaced")
        };
        assert_eq!(std::fs::read(tmp.path().join("n.md")).unwrap(), b"remote");
        assert_eq!(std::fs::read(tmp.path().join(kept)).unwrap(), b"old");
    }
}
