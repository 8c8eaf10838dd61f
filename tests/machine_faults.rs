//! When the machine misbehaves (a kernel queue overflow, inotify limits, mounts inside the
//! journal, hard links, a full remote, a clock that steps back), the daemon notices, says so
//! in `ctl status`, and catches up by itself. Each test reproduces the real condition (the
//! tests run as root, as CI does): lowered `fs.inotify.*` sysctls — always restored, by a
//! guard — SIGSTOP, tmpfs mounts. The sysctls are global, so these tests run one at a time
//! (a static mutex) in their own binary.

mod common;

use common::TestEnv;
use common::daemon::{Daemon, mirror, mirrored, settled_as, status_as};
use common::wait_for;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Start-up passes and settling.
const SETTLE: Duration = Duration::from_secs(60);
/// A change reaching the remote through the watcher (the fallback rescan is an hour away).
const PUSHED: Duration = Duration::from_secs(20);

/// One test at a time: the sysctls and mounts are the machine's.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn status(env: &TestEnv) -> serde_json::Value {
    status_as(env, None)
}

fn settled(env: &TestEnv) -> bool {
    settled_as(env, None)
}

/// A sysctl under /proc/sys set for a while, restored on drop (a failing test included).
struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    fn set(name: &str, value: u64) -> Sysctl {
        let path = Path::new("/proc/sys").join(name.replace('.', "/"));
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, value.to_string()).unwrap();
        Sysctl { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, self.old.trim());
    }
}

/// A tmpfs mounted at `dir` until dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {out:?}");
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn unmount(mut self) {
        umount(&self.dir);
        self.dir = PathBuf::new();
    }
}

fn umount(dir: &Path) {
    let out = Command::new("umount").arg(dir).output().unwrap();
    assert!(out.status.success(), "umount {}: {out:?}", dir.display());
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
        }
    }
}

#[test]
fn after_a_queue_overflow_directories_made_meanwhile_are_watched() {
    let _serial = serial();
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    // The queue size is fixed when the daemon creates its inotify instance.
    let queue = Sysctl::set("fs.inotify.max_queued_events", 16);
    let daemon = Daemon::start(&env);
    drop(queue);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "a.md").is_some() && settled(&env)).then_some(())
    });
    // Events pile up while the daemon is stopped, far past 16: the kernel drops them.
    daemon.signal(libc::SIGSTOP);
    for i in 0..30 {
        env.write_file(&format!("d{i}/f.md"), format!("f{i}"));
    }
    daemon.signal(libc::SIGCONT);
    wait_for(SETTLE, "the full pass after the overflow", || {
        let s = status(&env);
        (s["watcher_overflows"].as_u64() >= Some(1)
            && (0..30).all(|i| mirrored(&env, &format!("d{i}/f.md")).is_some())
            && settled(&env))
        .then_some(())
    });
    // Every directory made while events were lost is watched now.
    for i in [0, 17, 29] {
        env.write_file(&format!("d{i}/later.md"), format!("later{i}"));
    }
    for i in [0, 17, 29] {
        let rel = format!("d{i}/later.md");
        wait_for(PUSHED, &rel, || mirrored(&env, &rel));
    }
    wait_for(PUSHED, "idle", || settled(&env).then_some(()));
}

#[test]
fn a_filesystem_mounted_or_unmounted_inside_the_root_is_watched() {
    let _serial = serial();
    let env = TestEnv::new();
    env.write_file("sub/under.md", "under");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "sub/under.md").is_some() && settled(&env)).then_some(())
    });
    let sub = env.journal().join("sub");
    let mount = Tmpfs::mount(&sub, "4m");
    std::fs::write(sub.join("on-tmpfs.md"), "on tmpfs").unwrap();
    wait_for(PUSHED, "a file on the new mount", || {
        mirrored(&env, "sub/on-tmpfs.md")
    });
    std::fs::create_dir(sub.join("deeper")).unwrap();
    std::fs::write(sub.join("deeper/d.md"), "d").unwrap();
    wait_for(PUSHED, "a file in a new directory on the mount", || {
        mirrored(&env, "sub/deeper/d.md")
    });
    // Unmounted: the directory underneath is watched again.
    mount.unmount();
    wait_for(PUSHED, "idle after the unmount", || {
        settled(&env).then_some(())
    });
    std::fs::write(sub.join("after.md"), "after").unwrap();
    wait_for(PUSHED, "a file written after the unmount", || {
        mirrored(&env, "sub/after.md")
    });
    let _ = mirror(&env);
}
