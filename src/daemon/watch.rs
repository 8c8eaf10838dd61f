//! The filesystem watcher: one non-recursive inotify watch per directory we back up.
//!
//! notify's recursive mode walks every directory (`.git`, `target`, …) and gives up on the
//! whole tree at the first one it cannot read, and it does not watch a root that is a
//! symlink. So the recursion is ours: the resolved root and each directory the filter
//! accepts get a [`RecursiveMode::NonRecursive`] watch; hidden and excluded directories are
//! never watched; a directory that cannot be read or watched is skipped with one warning
//! and listed in the status ([`WatchHealth`]); a new directory (created or moved in) is
//! watched when its event arrives, and queued so the worker's scan walks it.
//!
//! The root is watched where it resolves to, and its parents watch for it being replaced
//! (`mv ~/.devlog x; mkdir ~/.devlog`) or going missing and coming back; either way every
//! watch is re-armed on the new root and a full pass is asked for. Nothing is polled while
//! all is well: the root's identity (device, inode) is checked when an event suggests a
//! change, and every couple of seconds only where events cannot tell (a parent that cannot
//! be watched, the inotify limit reached, no inotify instance, or a system without
//! `/proc/self/mountinfo`).
//!
//! On Linux the watcher is our own ([`super::inotify`]: only the events that can mean a
//! change, and a watch the kernel drops is reported); elsewhere it is notify's. Either
//! calls us on its own thread; we forward to a manager thread that owns the watcher
//! (`watch` cannot be called from its own handler). Event paths become
//! paths relative to the root in the [`EventSink`], a set shared with the queue task.
//! Nothing is ever dropped: paths coalesce in the set, so memory is bounded by distinct
//! paths, and past [`MAX_PENDING`] the set collapses into one "rescan" flag. Overflow
//! (`need_rescan`) and watcher errors re-arm every watch on the tree as it is now (the
//! directories made while events were lost get theirs) and then raise that flag. A mount or
//! unmount inside the root re-arms the same way: `/proc/self/mountinfo` wakes a poll(2)
//! with POLLPRI when the mount table changes, and the mount points under the root are
//! compared; the kernel keeps a watch on a covered directory and drops one on an
//! unmounted filesystem. No inotify instance at all (`fs.inotify.max_user_instances`) is
//! limited mode, the watcher retried at every check. Access events other than a close
//! after writing are dropped here (notify's watcher on other systems reports them).

use crate::filter::Filter;
use notify::event::{
    AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode,
};
use notify::{RecursiveMode, Watcher as _};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The watcher: our own inotify on Linux, notify's elsewhere.
#[cfg(target_os = "linux")]
type Backend = super::inotify::InotifyWatcher;
#[cfg(not(target_os = "linux"))]
type Backend = notify::RecommendedWatcher;

/// Distinct pending paths before the sink gives up on them and asks for a full pass.
const MAX_PENDING: usize = 100_000;
/// Unwatchable directories remembered (and listed) at most.
const MAX_UNWATCHED: usize = 10_000;
/// Names that are not UTF-8 remembered as already reported, at most.
const MAX_REPORTED_NAMES: usize = 10_000;
/// How often the root's identity is checked where events cannot tell (see the module docs).
const ROOT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Why a full pass was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescanReason {
    Startup,
    Scheduled,
    /// The kernel's event queue overflowed, or too many paths piled up.
    Overflow,
    WatcherError,
    /// Part of the tree is not watched (inotify limit): periodic scans cover it.
    WatchLimited,
    Reload,
    /// The root was replaced, or came back after missing: watched anew.
    RootChanged,
    /// A filesystem was mounted or unmounted inside the root: watched anew.
    MountsChanged,
}

/// What the watcher cannot see, for `ctl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchHealth {
    /// Directories (relative to the root) that cannot be read or watched.
    pub unwatched: BTreeSet<String>,
    /// Set while the root is missing (or not a directory): what to tell the user.
    pub root_missing: Option<String>,
}

#[derive(Default)]
struct Pending {
    paths: HashSet<String>,
    rescan: Option<RescanReason>,
}

/// Paths from the watcher thread, waiting for the queue task; and what the watcher cannot
/// see. Outlives each [`Watch`] (a reload replaces the watch, not the sink).
#[derive(Default)]
pub struct EventSink {
    pending: Mutex<Pending>,
    wake: Notify,
    health: Mutex<WatchHealth>,
    /// A change of the inotify-limit message (`Some(None)`: watched in full again).
    limited: Mutex<Option<Option<String>>>,
}

impl EventSink {
    pub fn add_paths(&self, paths: impl IntoIterator<Item = String>) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        for path in paths {
            if p.paths.len() >= MAX_PENDING {
                p.paths.clear();
                p.rescan = Some(RescanReason::Overflow);
                break;
            }
            p.paths.insert(path);
        }
        drop(p);
        self.wake.notify_one();
    }

    pub fn request_rescan(&self, reason: RescanReason) {
        if let Ok(mut p) = self.pending.lock() {
            p.rescan.get_or_insert(reason);
        }
        self.wake.notify_one();
    }

    /// Take everything pending.
    pub fn drain(&self) -> (Vec<String>, Option<RescanReason>) {
        match self.pending.lock() {
            Ok(mut p) => (p.paths.drain().collect(), p.rescan.take()),
            Err(_) => (Vec::new(), Some(RescanReason::WatcherError)),
        }
    }

    /// What the watcher cannot see now.
    pub fn health(&self) -> WatchHealth {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn is_unwatched(&self, rel: &str) -> bool {
        self.health.lock().is_ok_and(|h| h.unwatched.contains(rel))
    }

    fn update_health(&self, f: impl FnOnce(&mut WatchHealth)) {
        if let Ok(mut h) = self.health.lock() {
            f(&mut h);
        }
    }

    /// The watcher hit (or left) the inotify limit after start-up.
    fn set_limited(&self, limited: Option<String>) {
        if let Ok(mut l) = self.limited.lock() {
            *l = Some(limited);
        }
        self.wake.notify_one();
    }

    /// A change of the limit message since the last call, if any.
    pub fn take_limited(&self) -> Option<Option<String>> {
        self.limited.lock().ok().and_then(|mut l| l.take())
    }

    /// Wait until something is pending.
    pub async fn wait(&self) {
        self.wake.notified().await;
    }
}

/// A running watcher. Dropping it stops watching.
pub struct Watch {
    manager: mpsc::Sender<Msg>,
    /// Set when part of the tree cannot be watched (inotify limit); says what to do.
    pub limited: Option<String>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.manager.send(Msg::Stop);
    }
}

enum Msg {
    /// An event from the watcher of one generation (each re-arm makes a new watcher).
    Event(u64, notify::Result<notify::Event>),
    /// The mount table changed (`/proc/self/mountinfo` polled with POLLPRI).
    MountsChanged,
    Stop,
}

/// Why the watch cannot start (the daemon says it and exits: nothing to back up).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {}: it is missing or not a directory", .0.display())]
    NoRoot(PathBuf),
    #[error("cannot watch {}: {why}", .root.display())]
    Root { root: PathBuf, why: String },
    #[error("cannot start the watcher thread: {0}")]
    Thread(std::io::Error),
}

/// No watcher could be made (an inotify instance, an FSEvents stream).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the filesystem watcher: {0}")]
struct WatcherUnavailable(notify::Error);

/// Watch `root` (resolved) and the directories `filter` accepts, feeding `sink`.
pub fn start(root: &Path, filter: &Filter, sink: Arc<EventSink>) -> Result<Watch, WatchError> {
    let (tx, rx) = mpsc::channel();
    let mut manager = Manager {
        root: root.to_path_buf(),
        filter: filter.clone(),
        sink,
        tx: tx.clone(),
        generation: 0,
        watcher: None,
        real: None,
        identity: None,
        parents: Vec::new(),
        watched: HashSet::new(),
        cap: cap_override(),
        limit_hit: false,
        not_watched_for_limit: 0,
        limited: None,
        warned: HashSet::new(),
        reported_names: HashSet::new(),
        root_error: None,
        parents_watched: false,
        last_root_check: Instant::now(),
        mounts: Vec::new(),
        limit_seen: None,
    };
    if let Err(e) = manager.arm() {
        // No inotify instance to be had (fs.inotify.max_user_instances): run on scans, say
        // which limit to raise, and retry the watcher at every root check. Exiting would
        // leave the journal without a backup: the service manager does not restart exit 2.
        manager.watcher = None;
        if resolve(root).is_none() {
            return Err(WatchError::NoRoot(root.to_path_buf()));
        }
        manager.limited = Some(instance_limit_message(&e));
    } else {
        if manager.real.is_none() {
            return Err(WatchError::NoRoot(root.to_path_buf()));
        }
        if let Some(e) = &manager.root_error {
            return Err(WatchError::Root {
                root: root.to_path_buf(),
                why: e.clone(),
            });
        }
    }
    let limited = manager.limited.clone();
    std::thread::Builder::new()
        .name("devlogd-watch".into())
        .spawn(move || manager.run(rx))
        .map_err(WatchError::Thread)?;
    Ok(Watch {
        manager: tx,
        limited,
    })
}

/// Owns the watcher: adds and drops watches as directories come and go, re-arms on a new
/// root, turns events into relative paths.
struct Manager {
    /// The configured root (what users see paths relative to).
    root: PathBuf,
    filter: Filter,
    sink: Arc<EventSink>,
    tx: mpsc::Sender<Msg>,
    generation: u64,
    watcher: Option<Backend>,
    /// Where the root resolves to: the watches live here. `None` while it is missing.
    real: Option<PathBuf>,
    identity: Option<(u64, u64)>,
    /// Parents of the root (configured and resolved), watched for its name.
    parents: Vec<PathBuf>,
    /// Directories (absolute, under `real`) with a watch.
    watched: HashSet<PathBuf>,
    /// The test override of the watch limit.
    cap: Option<usize>,
    limit_hit: bool,
    not_watched_for_limit: usize,
    limited: Option<String>,
    /// Unwatchable directories already warned about (one warning each).
    warned: HashSet<String>,
    reported_names: HashSet<PathBuf>,
    /// Why the root itself could not be watched (start-up fails on it).
    root_error: Option<String>,
    /// Every parent of the root has a watch: its replacement is an event, not a poll.
    parents_watched: bool,
    last_root_check: Instant,
    /// Mount points under the root when it was last armed: a mount or an unmount there
    /// hides or uncovers a tree our watches do not see, so a change re-arms.
    mounts: Vec<PathBuf>,
    /// `fs.inotify.max_user_watches` when the limit was hit: raised since, every watch is
    /// re-armed (limited mode ends without a restart).
    limit_seen: Option<usize>,
}

impl Manager {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        // Held until the manager ends; dropping it ends the mount watcher's thread.
        let mounts = watch_mounts(self.tx.clone());
        loop {
            let polled = self.needs_polling(mounts.is_some());
            let msg = if polled {
                rx.recv_timeout(ROOT_CHECK_INTERVAL)
            } else {
                // Nothing to check until something happens: no wake-ups while idle.
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            };
            match msg {
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Msg::Event(generation, res)) => self.on_event(generation, res),
                Ok(Msg::MountsChanged) => self.check_root(),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if polled && self.last_root_check.elapsed() >= ROOT_CHECK_INTERVAL {
                self.check_root();
            }
        }
    }

    /// Whether something must be checked by the clock because no event would tell.
    fn needs_polling(&self, mounts_watched: bool) -> bool {
        !cfg!(target_os = "linux")
            || !mounts_watched
            || self.watcher.is_none()
            || self.limit_hit
            || !self.parents_watched
    }

    /// A fresh watcher on the root as it resolves now: the root, the accepted directories
    /// below it, and its parents. A missing root is recorded, not an error.
    fn arm(&mut self) -> Result<(), WatcherUnavailable> {
        self.generation += 1;
        self.watcher = None; // closes the old inotify instance and its watches
        self.watched.clear();
        self.parents.clear();
        self.limit_hit = false;
        self.not_watched_for_limit = 0;
        self.root_error = None;
        self.last_root_check = Instant::now();
        self.sink.update_health(|h| *h = WatchHealth::default());
        let generation = self.generation;
        let tx = self.tx.clone();
        // Symlinks are not followed: nothing outside the root is watched (or pushed).
        let config = notify::Config::default().with_follow_symlinks(false);
        let watcher = Backend::new(
            move |res: notify::Result<notify::Event>| {
                let _ = tx.send(Msg::Event(generation, res));
            },
            config,
        )
        .map_err(WatcherUnavailable)?;
        self.watcher = Some(watcher);
        let resolved = resolve(&self.root);
        let mut parents: Vec<PathBuf> = self
            .root
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect();
        if let Some((real, _)) = &resolved
            && let Some(p) = real.parent()
            && !parents.iter().any(|q| q == p)
        {
            parents.push(p.to_path_buf());
        }
        self.parents_watched = true;
        for parent in &parents {
            if let Some(w) = self.watcher.as_mut()
                && let Err(e) = w.watch(parent, RecursiveMode::NonRecursive)
            {
                self.parents_watched = false;
                tracing::debug!(dir = %parent.display(), error = %e, "cannot watch the root's parent; its identity is polled");
            }
        }
        self.parents = parents;
        match resolved {
            None => {
                self.real = None;
                self.identity = None;
                let message = format!(
                    "the journal root {} is missing or not a directory: nothing is backed up until it is back (watching for it)",
                    self.root.display()
                );
                self.sink
                    .update_health(|h| h.root_missing = Some(message.clone()));
            }
            Some((real, identity)) => {
                self.real = Some(real.clone());
                self.identity = Some(identity);
                self.mounts = mounts_under(&real);
                self.add_tree(real, String::new());
                let dirs = self.watched.len() + self.not_watched_for_limit;
                self.limited = if self.limit_hit {
                    Some(limit_message(dirs, current_limit()))
                } else {
                    watch_limit_problem(dirs)
                };
            }
        }
        Ok(())
    }

    /// Watch `dir` and the accepted directories below it.
    fn add_tree(&mut self, dir: PathBuf, rel: String) {
        let mut stack = vec![(dir, rel)];
        while let Some((abs, rel)) = stack.pop() {
            if self.limit_hit {
                self.not_watched_for_limit += 1;
            } else if self.cap.is_some_and(|cap| self.watched.len() >= cap) {
                self.hit_limit();
                self.not_watched_for_limit += 1;
            } else {
                let Some(watcher) = self.watcher.as_mut() else {
                    return;
                };
                match watcher.watch(&abs, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(abs.clone());
                        self.sink.update_health(|h| {
                            h.unwatched.remove(&rel);
                        });
                    }
                    Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                        self.hit_limit();
                        self.not_watched_for_limit += 1;
                    }
                    Err(e) => {
                        let gone = match &e.kind {
                            notify::ErrorKind::PathNotFound => true,
                            notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
                            _ => false,
                        };
                        // Gone already (a short-lived directory): nothing to watch, no warning.
                        if !gone {
                            self.unwatchable(&rel, &abs, &e.to_string());
                        }
                        continue;
                    }
                }
            }
            let entries = match std::fs::read_dir(&abs) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.unwatchable(&rel, &abs, &e.to_string());
                    continue;
                }
            };
            for entry in entries.flatten() {
                // file_type does not follow symlinks: a link to a directory is not walked.
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    self.report_name(&path);
                    continue;
                };
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if !self.filter.skip_dir(&child) {
                    stack.push((path, child));
                }
            }
        }
    }

    fn hit_limit(&mut self) {
        if !self.limit_hit {
            self.limit_seen = current_limit();
        }
        self.limit_hit = true;
    }

    /// The limit was hit while adding watches after start-up (start-up and re-arms report
    /// through [`Watch::limited`] and [`Manager::check_root`]): say so once, and tell the
    /// worker, which then scans every minute.
    fn report_limit(&mut self) {
        if self.limit_hit && self.limited.is_none() {
            let dirs = self.watched.len() + self.not_watched_for_limit;
            let message = limit_message(dirs, current_limit());
            tracing::warn!("{message}");
            self.limited = Some(message.clone());
            self.sink.set_limited(Some(message));
        }
    }

    /// A directory that cannot be read or watched: one warning, listed in the status.
    fn unwatchable(&mut self, rel: &str, abs: &Path, error: &str) {
        if rel.is_empty() {
            self.root_error = Some(error.to_string());
        }
        if self.warned.len() < MAX_UNWATCHED && self.warned.insert(rel.to_string()) {
            tracing::warn!(
                dir = %abs.display(),
                error,
                "cannot watch this directory: it is not backed up until it is readable (fix its permissions)"
            );
        }
        let rel = if rel.is_empty() { "." } else { rel };
        self.sink.update_health(|h| {
            if h.unwatched.len() < MAX_UNWATCHED {
                h.unwatched.insert(rel.to_string());
            }
        });
    }

    /// A name that is not UTF-8 cannot be a blob name: say so once per path.
    fn report_name(&mut self, path: &Path) {
        if self.reported_names.contains(path) {
            return;
        }
        if self.reported_names.len() >= MAX_REPORTED_NAMES {
            self.reported_names.clear();
        }
        self.reported_names.insert(path.to_path_buf());
        let shown = self
            .real
            .as_deref()
            .and_then(|real| path.strip_prefix(real).ok())
            .unwrap_or(path);
        tracing::warn!(
            path = %shown.display(),
            "ignoring a name that is not valid UTF-8: devlogd backs up UTF-8 names only; rename it to back it up"
        );
    }

    /// Re-arm when the root now resolves to another directory, vanished, or came back.
    fn check_root(&mut self) {
        self.last_root_check = Instant::now();
        let now = resolve(&self.root);
        let same = match (&now, &self.real) {
            (Some((real, id)), Some(old)) => real == old && Some(*id) == self.identity,
            (None, None) => true,
            _ => false,
        };
        // A watcher that could not be rebuilt last time is retried at every check.
        let healthy = self.watcher.is_some();
        if same && healthy {
            // A filesystem mounted or unmounted inside the root: the watches see the
            // covered (or vanished) directories, not what is there now.
            if let Some(real) = self.real.clone()
                && mounts_under(&real) != self.mounts
            {
                tracing::info!(
                    root = %self.root.display(),
                    "a filesystem was mounted or unmounted inside the journal: watching it again, with a full pass"
                );
                self.rearm(RescanReason::MountsChanged);
            } else if self.limit_hit && current_limit() != self.limit_seen {
                tracing::info!(
                    "fs.inotify.max_user_watches changed: watching the tree again, with a full pass"
                );
                self.rearm(RescanReason::WatchLimited);
            }
            return;
        }
        match &now {
            _ if !healthy => {}
            None => tracing::warn!(
                root = %self.root.display(),
                "the journal root is gone (moved or deleted?): watching for it to come back"
            ),
            Some((real, _)) => tracing::info!(
                root = %self.root.display(),
                resolved = %real.display(),
                "the journal root was replaced or is back: watching it again, with a full pass"
            ),
        }
        let reason = if healthy {
            RescanReason::RootChanged
        } else {
            RescanReason::WatcherError
        };
        self.rearm(reason);
    }

    /// Every watch rebuilt on the tree as it is now, then a full pass for what happened
    /// meanwhile (in that order: a change after the walk is an event, one before is found
    /// by the pass). After an overflow or a watcher error the directories made while
    /// events were lost are watched this way.
    fn rearm(&mut self, reason: RescanReason) {
        let was_healthy = self.watcher.is_some();
        let was_limited = self.limited.clone();
        if let Err(e) = self.arm() {
            self.watcher = None;
            let message = instance_limit_message(&e);
            if was_healthy {
                tracing::warn!(error = %e, "cannot watch the journal root again (retrying every few seconds); scheduling a full pass");
                self.sink.request_rescan(RescanReason::WatcherError);
            }
            if self.limited.as_deref() != Some(message.as_str()) {
                self.limited = Some(message.clone());
                self.sink.set_limited(Some(message));
            }
            return;
        }
        if self.limited != was_limited {
            if let Some(message) = &self.limited {
                tracing::warn!("{message}");
            }
            self.sink.set_limited(self.limited.clone());
        }
        if self.real.is_some() {
            self.sink.request_rescan(reason);
        }
    }

    fn on_event(&mut self, generation: u64, res: notify::Result<notify::Event>) {
        if generation != self.generation {
            return; // from a watcher replaced since
        }
        let event = match res {
            Ok(e) => e,
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                self.hit_limit();
                self.report_limit();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "watcher error; watching the tree again, with a full pass");
                self.rearm(RescanReason::WatcherError);
                return;
            }
        };
        if event.need_rescan() {
            tracing::warn!(
                "the kernel dropped filesystem events; watching the tree again, with a full pass"
            );
            self.rearm(RescanReason::Overflow);
            return;
        }
        // Opening or reading a file changes nothing; a close after writing does.
        if let EventKind::Access(kind) = event.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return;
        }
        let new_dir = matches!(
            event.kind,
            EventKind::Create(CreateKind::Folder | CreateKind::Any)
                | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Any))
        );
        let gone = matches!(
            event.kind,
            EventKind::Remove(RemoveKind::Folder | RemoveKind::Any)
                | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        );
        let attrib = matches!(event.kind, EventKind::Modify(ModifyKind::Metadata(_)));
        let mut rels = Vec::new();
        let mut check_root = false;
        for path in &event.paths {
            if self.parents.iter().any(|p| p == path) {
                check_root = true; // a parent of the root itself moved or deleted
                continue;
            }
            let Some(real) = self.real.clone() else {
                check_root |= self.names_the_root(path);
                continue;
            };
            if *path == real {
                check_root = true; // the root itself was moved or deleted
                continue;
            }
            if !path.starts_with(&real) {
                check_root |= self.names_the_root(path);
                continue;
            }
            let rel = match crate::scan::relative(&real, path) {
                Ok(rel) => rel,
                Err(_) => {
                    self.report_name(path);
                    continue;
                }
            };
            if gone {
                if self.watched.contains(path) {
                    self.forget_tree(path);
                }
                if self.sink.is_unwatched(&rel) {
                    let below = format!("{rel}/");
                    self.sink.update_health(|h| {
                        h.unwatched.retain(|d| *d != rel && !d.starts_with(&below));
                    });
                }
            } else if (new_dir || (attrib && self.sink.is_unwatched(&rel)))
                && !self.watched.contains(path)
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
                && self.filter.accepts_dir(&rel)
            {
                self.add_tree(path.clone(), rel.clone());
            }
            rels.push(rel);
        }
        self.report_limit();
        if !rels.is_empty() {
            self.sink.add_paths(rels);
        }
        if check_root {
            self.check_root();
        }
    }

    /// An event in a parent of the root about the root's own name.
    fn names_the_root(&self, path: &Path) -> bool {
        let Some(parent) = path.parent() else {
            return false;
        };
        self.parents.iter().any(|p| p == parent)
            && (path == self.root || self.real.as_deref().is_some_and(|r| path == r))
    }

    /// A directory moved away or deleted: its watches go (notify drops the kernel's).
    fn forget_tree(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for path in gone {
            self.watched.remove(&path);
            if let Some(w) = self.watcher.as_mut() {
                let _ = w.unwatch(&path);
            }
        }
    }
}

/// A thread that sends [`Msg::MountsChanged`] whenever the mount table changes; it ends
/// when the returned handle is dropped. `None` where `/proc/self/mountinfo` cannot be
/// polled (not Linux): the manager then checks by the clock.
fn watch_mounts(tx: mpsc::Sender<Msg>) -> Option<std::os::unix::net::UnixStream> {
    use rustix::event::{PollFd, PollFlags, poll};
    if !cfg!(target_os = "linux") {
        return None;
    }
    let mountinfo = std::fs::File::open("/proc/self/mountinfo").ok()?;
    let (stop, stopped) = std::os::unix::net::UnixStream::pair().ok()?;
    let spawned = std::thread::Builder::new()
        .name("devlogd-mounts".into())
        .spawn(move || {
            loop {
                let mut fds = [
                    PollFd::new(&mountinfo, PollFlags::PRI),
                    PollFd::new(&stopped, PollFlags::IN),
                ];
                // It sleeps until the mount table changes (POLLPRI|POLLERR, reset by this
                // very poll) or we are stopped.
                match poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                }
                if !fds[1].revents().is_empty() {
                    return;
                }
                if fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR)
                    && tx.send(Msg::MountsChanged).is_err()
                {
                    return;
                }
            }
        });
    spawned.ok().map(|_| stop)
}

/// Where `root` resolves to, and that directory's (device, inode); `None` when missing.
fn resolve(root: &Path) -> Option<(PathBuf, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(root).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    meta.is_dir().then(|| (real, (meta.dev(), meta.ino())))
}

/// Mount points strictly inside `real`, from `/proc/self/mountinfo` (sorted; empty where
/// there is no such file).
fn mounts_under(real: &Path) -> Vec<PathBuf> {
    match std::fs::read("/proc/self/mountinfo") {
        Ok(table) => mounts_in(&table, real),
        Err(_) => Vec::new(),
    }
}

/// Mount points strictly inside `real` in a mountinfo table (sorted). Read as bytes: a mount
/// point anywhere that is not UTF-8 is a path like any other and never hides the others.
fn mounts_in(table: &[u8], real: &Path) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut mounts: Vec<PathBuf> = table
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(|p| PathBuf::from(std::ffi::OsString::from_vec(unescape_mountinfo(p))))
        .filter(|p| p != real && p.starts_with(real))
        .collect();
    mounts.sort();
    mounts
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(digits) = field.get(i + 1..i + 4)
            && let Ok(digits) = std::str::from_utf8(digits)
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// What to tell the user when no watcher can be created at all (no inotify instance).
fn instance_limit_message(error: &WatcherUnavailable) -> String {
    format!(
        "{error}: no inotify instance is available (fs.inotify.max_user_instances reached?), so changes are found by a scan every minute instead, and the watcher is retried every few seconds. Fix: sudo sysctl fs.inotify.max_user_instances=1024 (and add that setting to /etc/sysctl.d/90-devlogd.conf to keep it)"
    )
}

/// The test override `DEVLOGD_INOTIFY_MAX_WATCHES`: watches are capped there.
fn cap_override() -> Option<usize> {
    std::env::var("DEVLOGD_INOTIFY_MAX_WATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The inotify watch limit, or the test override `DEVLOGD_INOTIFY_MAX_WATCHES`.
pub fn current_limit() -> Option<usize> {
    if let Some(v) = std::env::var("DEVLOGD_INOTIFY_MAX_WATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Some(v);
    }
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn watch_limit_problem(dirs: usize) -> Option<String> {
    let limit = current_limit()?;
    (dirs > limit).then(|| limit_message(dirs, Some(limit)))
}

fn limit_message(dirs: usize, limit: Option<usize>) -> String {
    let want = (dirs * 2).max(65_536).next_power_of_two();
    format!(
        "the journal has {dirs} directories but fs.inotify.max_user_watches is {}: changes outside the watched part are found by a scan every minute instead. Fix: sudo sysctl fs.inotify.max_user_watches={want} (and add that setting to /etc/sysctl.d/90-devlogd.conf to keep it)",
        limit.map_or_else(|| "exhausted".to_string(), |l| l.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_coalesces_and_collapses_into_a_rescan_when_huge() {
        let sink = EventSink::default();
        sink.add_paths(["a.md".to_string(), "a.md".to_string(), "b.md".to_string()]);
        let (mut paths, rescan) = sink.drain();
        paths.sort();
        assert_eq!(paths, vec!["a.md", "b.md"]);
        assert_eq!(rescan, None);
        sink.add_paths((0..MAX_PENDING + 10).map(|i| format!("f{i}.md")));
        let (paths, rescan) = sink.drain();
        assert!(paths.len() < MAX_PENDING, "memory stays bounded");
        assert_eq!(rescan, Some(RescanReason::Overflow));
        assert_eq!(sink.drain(), (vec![], None));
    }

    /// Polls the sink until `want` was seen (or 10 s passed); everything seen.
    fn seen_until(sink: &EventSink, want: &str) -> HashSet<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = HashSet::new();
        while !seen.contains(want) && Instant::now() < deadline {
            seen.extend(sink.drain().0);
            std::thread::sleep(Duration::from_millis(20)); // polling, bounded by the deadline
        }
        seen
    }

    #[test]
    fn watches_the_resolved_root_and_accepted_dirs_only_and_new_dirs_as_they_come() {
        use crate::config::{DEFAULT_EXCLUDE, DEFAULT_INCLUDE};
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        for d in ["a", ".git", "target/debug"] {
            std::fs::create_dir_all(real.join(d)).unwrap();
        }
        let root = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &root).unwrap();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let filter = Filter::new(&root, &s(DEFAULT_INCLUDE), &s(DEFAULT_EXCLUDE)).unwrap();
        let sink = Arc::new(EventSink::default());
        let watch = start(&root, &filter, sink.clone()).unwrap();
        assert_eq!(watch.limited, None);
        assert_eq!(sink.health(), WatchHealth::default());
        std::fs::write(real.join(".git/x.md"), "x").unwrap();
        std::fs::write(real.join("target/debug/y.md"), "y").unwrap();
        std::fs::write(real.join("top.md"), "t").unwrap();
        let seen = seen_until(&sink, "top.md");
        assert!(seen.contains("top.md"), "{seen:?}");
        assert!(!seen.iter().any(|p| p.contains('/')), "{seen:?}");
        std::fs::create_dir(real.join("new")).unwrap();
        std::fs::write(real.join("new/n.md"), "n").unwrap();
        std::fs::write(real.join("a/later.md"), "l").unwrap();
        let seen = seen_until(&sink, "a/later.md");
        assert!(seen.contains("new"), "{seen:?}");
        assert!(seen.contains("a/later.md"), "{seen:?}");
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo(br"/a\040b/c\134d"), br"/a b/c\d");
        assert_eq!(unescape_mountinfo(br"/plain\04"), br"/plain\04");
        assert_eq!(unescape_mountinfo("/é".as_bytes()), "/é".as_bytes());
        assert_eq!(unescape_mountinfo(br"/x\377\011y"), b"/x\xff\ty");
    }

    #[test]
    fn a_non_utf8_mount_point_does_not_hide_the_others() {
        use std::os::unix::ffi::OsStrExt;
        let mut table = Vec::new();
        table.extend_from_slice(b"22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n");
        // Raw non-UTF-8 bytes in a mount point outside the root, before the ones inside.
        table.extend_from_slice(b"23 22 0:22 / /media/caf\xe9 rw shared:2 - vfat /dev/sdb1 rw\n");
        table.extend_from_slice(
            b"24 22 0:23 / /home/u/.devlog/usb\\040stick rw shared:3 - vfat /dev/sdc1 rw\n",
        );
        table.extend_from_slice(b"25 22 0:24 / /home/u/.devlog/raw\xff\xfe rw - tmpfs t rw\n");
        table.extend_from_slice(b"26 22 0:25 / /home/u/.devlog rw - tmpfs t rw\n");
        table.extend_from_slice(b"27 22 0:26 / /home/u/.devlogx rw - tmpfs t rw");
        let root = Path::new("/home/u/.devlog");
        let found = mounts_in(&table, root);
        let want = vec![
            root.join(std::ffi::OsStr::from_bytes(b"raw\xff\xfe")),
            root.join("usb stick"),
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn limit_message_names_the_sysctl_fix() {
        let m = limit_message(200_000, Some(8192));
        assert!(m.contains("200000 directories"), "{m}");
        assert!(
            m.contains("sudo sysctl fs.inotify.max_user_watches=524288"),
            "{m}"
        );
    }
}
