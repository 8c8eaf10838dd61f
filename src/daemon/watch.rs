//! The filesystem watcher: one recursive `notify` watcher on the root.
//!
//! notify calls us on its own thread; we turn every event path (both ends of a rename)
//! into a relative path and put it in the [`EventSink`], a set shared with the queue task.
//! Nothing is ever dropped: paths coalesce in the set, so memory is bounded by distinct
//! paths, and past [`MAX_PENDING`] the set collapses into one "rescan" flag. Overflow
//! (`need_rescan`) and watcher errors also become that flag.

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Distinct pending paths before the sink gives up on them and asks for a full pass.
const MAX_PENDING: usize = 100_000;

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
}

#[derive(Default)]
struct Pending {
    paths: HashSet<String>,
    rescan: Option<RescanReason>,
}

/// Paths from the watcher thread, waiting for the queue task.
#[derive(Default)]
pub struct EventSink {
    pending: Mutex<Pending>,
    wake: Notify,
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

    /// Wait until something is pending.
    pub async fn wait(&self) {
        self.wake.notified().await;
    }
}

/// A running watcher. Dropping it stops watching.
pub struct Watch {
    _watcher: RecommendedWatcher,
    /// Set when part of the tree cannot be watched; says what to do about it.
    pub limited: Option<String>,
}

/// Watch `root` recursively, feeding `sink`.
pub fn start(root: &Path, dirs_to_watch: usize, sink: Arc<EventSink>) -> Result<Watch, String> {
    let root_for_events: PathBuf = root.to_path_buf();
    let handler_sink = sink.clone();
    // Symlinks are not followed: nothing outside the root is watched (or pushed).
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = RecommendedWatcher::new(
        move |res: notify::Result<notify::Event>| handle(&root_for_events, &handler_sink, res),
        config,
    )
    .map_err(|e| format!("cannot start the filesystem watcher: {e}"))?;
    let mut limited = watch_limit_problem(dirs_to_watch);
    if let Err(e) = watcher.watch(root, RecursiveMode::Recursive) {
        let too_many = matches!(e.kind, notify::ErrorKind::MaxFilesWatch);
        if !too_many {
            return Err(format!("cannot watch {}: {e}", root.display()));
        }
        limited.get_or_insert_with(|| limit_message(dirs_to_watch, current_limit()));
    }
    Ok(Watch {
        _watcher: watcher,
        limited,
    })
}

fn handle(root: &Path, sink: &EventSink, res: notify::Result<notify::Event>) {
    let event = match res {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "watcher error; scheduling a full pass");
            sink.request_rescan(RescanReason::WatcherError);
            return;
        }
    };
    if event.need_rescan() {
        tracing::warn!("the kernel dropped filesystem events; scheduling a full pass");
        sink.request_rescan(RescanReason::Overflow);
        return;
    }
    // Opening or reading a file changes nothing; a close after writing does.
    if let EventKind::Access(kind) = event.kind
        && kind != AccessKind::Close(AccessMode::Write)
    {
        return;
    }
    let rels = event
        .paths
        .iter()
        .filter_map(|p| crate::scan::relative(root, p).ok())
        .filter(|rel| !rel.is_empty());
    sink.add_paths(rels);
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
