//! Our own inotify watcher for Linux, in place of notify's: notify 8 fixes the event mask,
//! and its mask includes IN_OPEN, IN_ACCESS and IN_CLOSE_NOWRITE — so every file the
//! daemon's own pass reads adds three events to the kernel's queue, and one overflow
//! causes the next. Here each directory is watched for the events that can mean a change
//! only. It also tells what notify keeps to itself: a watch the kernel dropped (IN_IGNORED
//! not asked for, e.g. after an unmount) on a directory that is still there comes out as
//! an error, so the tree is watched again and rescanned.
//!
//! It implements [`notify::Watcher`], so the watch manager drives it exactly as it drives
//! notify's watcher on other systems; events come out as [`notify::Event`]s of the kinds
//! notify's inotify backend uses.

use notify::event::{CreateKind, EventKind, Flag, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventHandler, RecursiveMode, WatcherKind};
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What can mean a change in a watched directory: entries made, written, closed after
/// writing, re-permissioned, renamed or deleted; the directory itself deleted or moved.
/// Not IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE: reading changes nothing.
const CHANGE_MASK: u32 = libc::IN_CREATE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_ATTRIB
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    // Directories only, never through a symlink; no events for names unlinked already.
    | libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW
    | libc::IN_EXCL_UNLINK;

/// Watch descriptors and the directories they watch, shared with the reader thread.
#[derive(Default)]
struct Watches {
    paths: HashMap<i32, PathBuf>,
    wds: HashMap<PathBuf, i32>,
    /// Removed by us: their IN_IGNORED is expected.
    removed: HashSet<i32>,
}

pub struct InotifyWatcher {
    fd: Arc<OwnedFd>,
    watches: Arc<Mutex<Watches>>,
    /// Dropping our end wakes the reader thread, which then ends.
    _stop: UnixStream,
}

impl notify::Watcher for InotifyWatcher {
    fn new<F: EventHandler>(handler: F, _config: notify::Config) -> notify::Result<Self> {
        // SAFETY: inotify_init1 takes flags only; a valid descriptor is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return Err(notify::Error::io(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let watches = Arc::new(Mutex::new(Watches::default()));
        let (stop, stopped) = UnixStream::pair().map_err(notify::Error::io)?;
        let reader = Reader {
            fd: fd.clone(),
            watches: watches.clone(),
            stopped,
            handler,
        };
        std::thread::Builder::new()
            .name("devlogd-inotify".into())
            .spawn(move || reader.run())
            .map_err(notify::Error::io)?;
        Ok(InotifyWatcher {
            fd,
            watches,
            _stop: stop,
        })
    }

    fn watch(&mut self, path: &Path, _mode: RecursiveMode) -> notify::Result<()> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| notify::Error::generic("a path with a NUL byte"))?;
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd =
            unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c_path.as_ptr(), CHANGE_MASK) };
        if wd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOSPC) => notify::Error::new(notify::ErrorKind::MaxFilesWatch),
                Some(libc::ENOENT) => notify::Error::path_not_found(),
                _ => notify::Error::io(e),
            }
            .add_path(path.to_path_buf()));
        }
        let mut w = self.lock();
        // The same directory under another name (a bind mount) shares the descriptor.
        if let Some(old) = w.paths.insert(wd, path.to_path_buf())
            && old != path
        {
            w.wds.remove(&old);
        }
        w.wds.insert(path.to_path_buf(), wd);
        w.removed.remove(&wd);
        Ok(())
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        let mut w = self.lock();
        let Some(wd) = w.wds.remove(path) else {
            return Err(notify::Error::watch_not_found());
        };
        w.removed.insert(wd);
        drop(w);
        // SAFETY: a valid descriptor; a stale wd only makes the call fail (EINVAL).
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
        Ok(())
    }

    fn kind() -> WatcherKind {
        WatcherKind::Inotify
    }
}

impl InotifyWatcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Reader<F> {
    fd: Arc<OwnedFd>,
    watches: Arc<Mutex<Watches>>,
    stopped: UnixStream,
    handler: F,
}

impl<F: EventHandler> Reader<F> {
    fn run(mut self) {
        // Room for many events at once (each is 16 bytes plus its name).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stopped.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds; no timeout: it sleeps until something happens.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.handler.handle_event(Err(notify::Error::io(e)));
                return;
            }
            if fds[1].revents != 0 {
                return; // the watcher was dropped
            }
            if fds[0].revents & libc::POLLIN == 0 {
                continue;
            }
            // SAFETY: reading into a buffer we own, at most its length.
            let len = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if len < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) {
                    continue;
                }
                self.handler.handle_event(Err(notify::Error::io(e)));
                return;
            }
            for raw in parse(&buf[..len as usize]) {
                if let Some(result) = self.translate(raw) {
                    self.handler.handle_event(result);
                }
            }
        }
    }

    fn translate(&mut self, raw: RawEvent<'_>) -> Option<notify::Result<Event>> {
        if raw.mask & libc::IN_Q_OVERFLOW != 0 {
            return Some(Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)));
        }
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let dir = w.paths.get(&raw.wd)?.clone();
        if raw.mask & libc::IN_IGNORED != 0 {
            // The kernel dropped this watch: because we asked, because the directory is
            // gone (its parent says so), or behind our back (an unmount): then, if the
            // directory is still there, it must be watched again.
            w.paths.remove(&raw.wd);
            if w.wds.get(&dir) == Some(&raw.wd) {
                w.wds.remove(&dir);
            }
            let ours = w.removed.remove(&raw.wd);
            drop(w);
            let still_there = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
            return (!ours && still_there).then(|| {
                Err(notify::Error::generic(
                    "the kernel dropped the watch on a directory that is still there",
                )
                .add_path(dir))
            });
        }
        drop(w);
        let is_dir = raw.mask & libc::IN_ISDIR != 0;
        let path = match raw.name {
            Some(name) => dir.join(name),
            None => dir,
        };
        let kind = if raw.mask & libc::IN_CREATE != 0 {
            EventKind::Create(if is_dir {
                CreateKind::Folder
            } else {
                CreateKind::File
            })
        } else if raw.mask & libc::IN_MOVED_FROM != 0 {
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        } else if raw.mask & libc::IN_MOVED_TO != 0 {
            EventKind::Modify(ModifyKind::Name(RenameMode::To))
        } else if raw.mask & (libc::IN_DELETE | libc::IN_DELETE_SELF) != 0 {
            EventKind::Remove(if is_dir || raw.mask & libc::IN_DELETE_SELF != 0 {
                RemoveKind::Folder
            } else {
                RemoveKind::File
            })
        } else if raw.mask & libc::IN_MOVE_SELF != 0 {
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        } else if raw.mask & libc::IN_ATTRIB != 0 {
            EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any))
        } else if raw.mask & libc::IN_CLOSE_WRITE != 0 {
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            ))
        } else if raw.mask & libc::IN_MODIFY != 0 {
            EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any))
        } else {
            return None; // IN_UNMOUNT: its IN_IGNORED follows
        };
        Some(Ok(Event::new(kind).add_path(path)))
    }
}

struct RawEvent<'a> {
    wd: i32,
    mask: u32,
    name: Option<&'a OsStr>,
}

/// The events in one read: `struct inotify_event` records, each followed by its
/// NUL-padded name.
fn parse(buf: &[u8]) -> Vec<RawEvent<'_>> {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    let mut events = Vec::new();
    let mut at = 0;
    while at + HEADER <= buf.len() {
        let field = |i: usize| {
            let b = &buf[at + i..at + i + 4];
            [b[0], b[1], b[2], b[3]]
        };
        let wd = i32::from_ne_bytes(field(0));
        let mask = u32::from_ne_bytes(field(4));
        let len = u32::from_ne_bytes(field(12)) as usize;
        let end = (at + HEADER + len).min(buf.len());
        let name_bytes = &buf[at + HEADER..end];
        let name_len = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = (name_len > 0).then(|| OsStr::from_bytes(&name_bytes[..name_len]));
        events.push(RawEvent { wd, mask, name });
        at = end;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(wd: i32, mask: u32, name: &str) -> Vec<u8> {
        let padded = if name.is_empty() {
            0
        } else {
            (name.len() + 1).next_multiple_of(16)
        };
        let mut out = Vec::new();
        out.extend_from_slice(&wd.to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut name = name.as_bytes().to_vec();
        name.resize(padded, 0);
        out.extend_from_slice(&name);
        out
    }

    #[test]
    fn parses_records_with_and_without_names() {
        let mut buf = record(1, libc::IN_CREATE, "a.md");
        buf.extend(record(2, libc::IN_DELETE_SELF, ""));
        buf.extend(record(
            1,
            libc::IN_MOVED_TO | libc::IN_ISDIR,
            "a-much-longer-name",
        ));
        let events = parse(&buf);
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.wd,
                    e.mask,
                    e.name.map(|n| n.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, libc::IN_CREATE, Some("a.md".into())),
                (2, libc::IN_DELETE_SELF, None),
                (
                    1,
                    libc::IN_MOVED_TO | libc::IN_ISDIR,
                    Some("a-much-longer-name".into())
                ),
            ]
        );
    }

    #[test]
    fn the_mask_has_no_read_only_events() {
        for read_only in [libc::IN_OPEN, libc::IN_ACCESS, libc::IN_CLOSE_NOWRITE] {
            assert_eq!(CHANGE_MASK & read_only, 0);
        }
    }
}
