//! Our own inotify watcher for Linux, in place of notify's: notify 8 fixes the event mask,
//! and its mask includes IN_OPEN — so every file the daemon's own pass opens to read adds
//! an event to the kernel's queue, and one overflow causes the next. Here each directory is
//! watched for the events that can mean a change only. It also tells what notify keeps to
//! itself: a watch the kernel dropped (IN_IGNORED, e.g. after an unmount) on a directory
//! that is still there comes out as an error, so the tree is watched again and rescanned.
//!
//! It implements [`notify::Watcher`], so the watch manager drives it exactly as it drives
//! notify's watcher on other systems; events come out as [`notify::Event`]s of the kinds
//! notify's inotify backend uses. The system calls and the parsing of the kernel's records
//! are the `inotify` crate's, the one notify's own backend uses.

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use notify::event::{CreateKind, EventKind, Flag, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventHandler, RecursiveMode, WatcherKind};
use rustix::event::{PollFd, PollFlags, poll};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What can mean a change in a watched directory: entries made, written, closed after
/// writing, re-permissioned, renamed or deleted; the directory itself deleted or moved.
/// Not IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE: reading changes nothing.
const CHANGE_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MODIFY)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    // Directories only, never through a symlink; no events for names unlinked already.
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW)
    .union(WatchMask::EXCL_UNLINK);

/// Watch descriptors and the directories they watch, shared with the reader thread.
#[derive(Default)]
struct Watches {
    paths: HashMap<i32, PathBuf>,
    wds: HashMap<PathBuf, WatchDescriptor>,
    /// Removed by us: their IN_IGNORED is expected.
    removed: HashSet<i32>,
}

pub struct InotifyWatcher {
    /// Adds and removes watches on the instance the reader thread reads.
    kernel: inotify::Watches,
    watches: Arc<Mutex<Watches>>,
    /// Dropping our end wakes the reader thread, which then ends.
    _stop: UnixStream,
}

impl notify::Watcher for InotifyWatcher {
    fn new<F: EventHandler>(handler: F, _config: notify::Config) -> notify::Result<Self> {
        // Non-blocking and close-on-exec.
        let inotify = Inotify::init().map_err(notify::Error::io)?;
        let kernel = inotify.watches();
        let watches = Arc::new(Mutex::new(Watches::default()));
        let (stop, stopped) = UnixStream::pair().map_err(notify::Error::io)?;
        let reader = Reader {
            inotify,
            watches: watches.clone(),
            stopped,
            handler,
        };
        std::thread::Builder::new()
            .name("devlogd-inotify".into())
            .spawn(move || reader.run())
            .map_err(notify::Error::io)?;
        Ok(InotifyWatcher {
            kernel,
            watches,
            _stop: stop,
        })
    }

    fn watch(&mut self, path: &Path, _mode: RecursiveMode) -> notify::Result<()> {
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(notify::Error::generic("a path with a NUL byte"));
        }
        let wd = self.kernel.add(path, CHANGE_MASK).map_err(|e| {
            match rustix::io::Errno::from_io_error(&e) {
                Some(rustix::io::Errno::NOSPC) => {
                    notify::Error::new(notify::ErrorKind::MaxFilesWatch)
                }
                Some(rustix::io::Errno::NOENT) => notify::Error::path_not_found(),
                _ => notify::Error::io(e),
            }
            .add_path(path.to_path_buf())
        })?;
        let id = wd.get_watch_descriptor_id();
        let mut w = self.lock();
        // The same directory under another name (a bind mount) shares the descriptor.
        if let Some(old) = w.paths.insert(id, path.to_path_buf())
            && old != path
        {
            w.wds.remove(&old);
        }
        w.wds.insert(path.to_path_buf(), wd);
        w.removed.remove(&id);
        Ok(())
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        let mut w = self.lock();
        let Some(wd) = w.wds.remove(path) else {
            return Err(notify::Error::watch_not_found());
        };
        w.removed.insert(wd.get_watch_descriptor_id());
        drop(w);
        // A stale descriptor only makes the call fail (EINVAL).
        let _ = self.kernel.remove(wd);
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
    inotify: Inotify,
    watches: Arc<Mutex<Watches>>,
    stopped: UnixStream,
    handler: F,
}

impl<F: EventHandler> Reader<F> {
    fn run(mut self) {
        // Room for many events at once (each is 16 bytes plus its name).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (readable, stopped) = {
                let mut fds = [
                    PollFd::new(&self.inotify, PollFlags::IN),
                    PollFd::new(&self.stopped, PollFlags::IN),
                ];
                // No timeout: it sleeps until something happens.
                match poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        self.handler.handle_event(Err(notify::Error::io(e.into())));
                        return;
                    }
                }
                (
                    fds[0].revents().contains(PollFlags::IN),
                    !fds[1].revents().is_empty(),
                )
            };
            if stopped {
                return; // the watcher was dropped
            }
            if !readable {
                continue;
            }
            let events = match self.inotify.read_events(&mut buf) {
                Ok(events) => events,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    self.handler.handle_event(Err(notify::Error::io(e)));
                    return;
                }
            };
            for raw in events {
                if let Some(result) = self.translate(raw) {
                    self.handler.handle_event(result);
                }
            }
        }
    }

    fn translate(&mut self, raw: inotify::Event<&OsStr>) -> Option<notify::Result<Event>> {
        let mask = raw.mask;
        if mask.contains(EventMask::Q_OVERFLOW) {
            return Some(Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)));
        }
        let id = raw.wd.get_watch_descriptor_id();
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let dir = w.paths.get(&id)?.clone();
        if mask.contains(EventMask::IGNORED) {
            // The kernel dropped this watch: because we asked, because the directory is
            // gone (its parent says so), or behind our back (an unmount): then, if the
            // directory is still there, it must be watched again.
            w.paths.remove(&id);
            if w.wds
                .get(&dir)
                .map(WatchDescriptor::get_watch_descriptor_id)
                == Some(id)
            {
                w.wds.remove(&dir);
            }
            let ours = w.removed.remove(&id);
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
        let is_dir = mask.contains(EventMask::ISDIR);
        let path = match raw.name {
            Some(name) => dir.join(name),
            None => dir,
        };
        let kind = if mask.contains(EventMask::CREATE) {
            EventKind::Create(if is_dir {
                CreateKind::Folder
            } else {
                CreateKind::File
            })
        } else if mask.contains(EventMask::MOVED_FROM) {
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        } else if mask.contains(EventMask::MOVED_TO) {
            EventKind::Modify(ModifyKind::Name(RenameMode::To))
        } else if mask.intersects(EventMask::DELETE | EventMask::DELETE_SELF) {
            EventKind::Remove(if is_dir || mask.contains(EventMask::DELETE_SELF) {
                RemoveKind::Folder
            } else {
                RemoveKind::File
            })
        } else if mask.contains(EventMask::MOVE_SELF) {
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        } else if mask.contains(EventMask::ATTRIB) {
            EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any))
        } else if mask.contains(EventMask::CLOSE_WRITE) {
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            ))
        } else if mask.contains(EventMask::MODIFY) {
            EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any))
        } else {
            return None; // IN_UNMOUNT: its IN_IGNORED follows
        };
        Some(Ok(Event::new(kind).add_path(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::Watcher;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn the_mask_is_exactly_the_change_events() {
        // IN_MODIFY|IN_ATTRIB|IN_CLOSE_WRITE|IN_MOVED_FROM|IN_MOVED_TO|IN_CREATE|IN_DELETE|
        // IN_DELETE_SELF|IN_MOVE_SELF, IN_ONLYDIR|IN_DONT_FOLLOW|IN_EXCL_UNLINK.
        assert_eq!(CHANGE_MASK.bits(), 0x0700_0fce);
        for read_only in [WatchMask::OPEN, WatchMask::ACCESS, WatchMask::CLOSE_NOWRITE] {
            assert!(!CHANGE_MASK.intersects(read_only));
        }
    }

    #[test]
    fn writes_renames_and_deletes_come_out_as_notify_events_and_reads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("old.md"), "x").unwrap();
        let (tx, rx) = mpsc::channel();
        let mut watcher = InotifyWatcher::new(tx, notify::Config::default()).unwrap();
        watcher.watch(&root, RecursiveMode::NonRecursive).unwrap();
        let _ = std::fs::read(root.join("old.md")).unwrap();
        std::fs::write(root.join("a.md"), "a").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::rename(root.join("old.md"), root.join("new.md")).unwrap();
        std::fs::remove_file(root.join("a.md")).unwrap();
        let mut seen = Vec::new();
        while let Ok(event) = rx.recv_timeout(Duration::from_secs(2)) {
            let event = event.unwrap();
            seen.push((event.kind, event.paths[0].clone()));
            if event.kind == EventKind::Remove(RemoveKind::File) {
                break;
            }
        }
        let f = |name: &str| root.join(name);
        let kinds = |name: &str| -> Vec<EventKind> {
            seen.iter()
                .filter(|(_, p)| p == &f(name))
                .map(|(k, _)| *k)
                .collect()
        };
        assert_eq!(
            kinds("a.md"),
            vec![
                EventKind::Create(CreateKind::File),
                EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
                EventKind::Access(notify::event::AccessKind::Close(
                    notify::event::AccessMode::Write
                )),
                EventKind::Remove(RemoveKind::File),
            ]
        );
        assert_eq!(kinds("sub"), vec![EventKind::Create(CreateKind::Folder)]);
        assert_eq!(
            kinds("old.md"),
            vec![EventKind::Modify(ModifyKind::Name(RenameMode::From))],
            "the read before made no event"
        );
        assert_eq!(
            kinds("new.md"),
            vec![EventKind::Modify(ModifyKind::Name(RenameMode::To))]
        );
        watcher.unwatch(&root).unwrap();
        assert!(watcher.unwatch(&root).is_err());
    }
}
