//! When the machine misbehaves (a kernel queue overflow, inotify limits, mounts inside the
//! journal, hard links, a full remote, a clock that steps back), the daemon notices, says so
//! in `ctl status`, and catches up by itself. Each test reproduces the real condition (the
//! tests run as root, as CI does): lowered `fs.inotify.*` sysctls — always restored, by a
//! guard — SIGSTOP, tmpfs mounts. The sysctls and the mount table are the machine's, so each
//! test here holds `common::machine::exclusive`: no other test's daemon runs meanwhile.

use crate::common;

use common::TestEnv;
use common::daemon::{Daemon, mirror, mirrored, settled, status};
use common::wait_for;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Start-up passes and settling.
const SETTLE: Duration = Duration::from_secs(60);
/// A change reaching the remote through the watcher (the fallback rescan is an hour away).
const PUSHED: Duration = Duration::from_secs(20);

/// One test at a time, and no other test's daemon: the sysctls and mounts are the machine's.
fn serial() -> common::machine::Exclusive {
    common::machine::exclusive()
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
    // The queue size is fixed when the daemon creates its inotify instance: kept low until
    // the start-up pass is through, so the instance surely exists by then (restored at once,
    // a loaded machine could start it after the restore, with a queue that never overflows).
    let queue = Sysctl::set("fs.inotify.max_queued_events", 16);
    let daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "a.md").is_some() && settled(&env)).then_some(())
    });
    drop(queue);
    // Events pile up while the daemon is stopped, far past 16: the kernel drops them.
    daemon.stop();
    for i in 0..30 {
        env.write_file(&format!("d{i}/f.md"), format!("f{i}"));
    }
    daemon.signal(libc::SIGCONT);
    let mut last = String::new();
    let passed = common::poll_until(SETTLE, || {
        let s = status(&env);
        last = s.to_string();
        (s.watcher_overflows >= 1
            && (0..30).all(|i| mirrored(&env, &format!("d{i}/f.md")).is_some())
            && settled(&env))
        .then_some(())
    });
    // It timed out once in CI (twice in all): the status and the log say which part never came.
    let missing: Vec<usize> = (0..30)
        .filter(|i| mirrored(&env, &format!("d{i}/f.md")).is_none())
        .collect();
    assert!(
        passed.is_some(),
        "no full pass after the overflow within {SETTLE:?}; not mirrored: {missing:?}\nstatus: {last}\nlog:\n{}",
        daemon.log_text()
    );
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
fn reading_the_journal_adds_nothing_to_the_kernel_queue() {
    let _serial = serial();
    let env = TestEnv::new();
    for i in 0..20 {
        env.write_file(&format!("r{i}.md"), format!("read me {i}"));
    }
    // Small until the start-up pass is through, so the daemon's instance surely has it.
    let queue = Sysctl::set("fs.inotify.max_queued_events", 16);
    let daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "r19.md").is_some() && settled(&env)).then_some(())
    });
    drop(queue);
    let before = status(&env);
    // Reads only (an editor's preview, grep, the daemon's own pass): opening and reading
    // changes nothing, so it must not fill the queue and make the kernel drop events.
    daemon.stop();
    for _ in 0..5 {
        for i in 0..20 {
            std::fs::read(env.journal().join(format!("r{i}.md"))).unwrap();
        }
    }
    daemon.signal(libc::SIGCONT);
    env.write_file("after.md", "after");
    wait_for(PUSHED, "a write after the reads", || {
        mirrored(&env, "after.md")
    });
    wait_for(PUSHED, "idle", || settled(&env).then_some(()));
    let after = status(&env);
    assert_eq!(
        after.watcher_overflows, before.watcher_overflows,
        "reads overflowed the kernel queue: {after}"
    );
    assert_eq!(after.rescans, before.rescans, "{after}");
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

#[test]
fn a_write_through_one_hard_link_updates_every_link_on_the_remote() {
    let _serial = serial();
    let env = TestEnv::new();
    let a = env.write_file("a.md", "old");
    std::fs::create_dir_all(env.journal().join("other")).unwrap();
    std::fs::hard_link(&a, env.journal().join("other/b.md")).unwrap();
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "other/b.md").is_some() && settled(&env)).then_some(())
    });
    // Written in place: the inode (and so the other name) changes too.
    std::fs::write(&a, "new content").unwrap();
    wait_for(PUSHED, "a.md updated", || {
        (mirrored(&env, "a.md").as_deref() == Some(b"new content".as_slice())).then_some(())
    });
    wait_for(PUSHED, "other/b.md updated through its other link", || {
        (mirrored(&env, "other/b.md").as_deref() == Some(b"new content".as_slice())).then_some(())
    });
    wait_for(PUSHED, "idle", || settled(&env).then_some(()));
}

#[test]
fn a_file_the_remote_refuses_is_kept_shown_and_retried_until_it_goes_through() {
    let _serial = serial();
    let env = TestEnv::new();
    env.write_file("ok.md", "ok");
    env.write_file("blocked.md", "blocked");
    // On the directory remote, a directory stands where blocked.md must go.
    let blocker = mirror(&env).join("blocked.md");
    std::fs::create_dir_all(blocker.join("inside")).unwrap();
    let _daemon = Daemon::start(&env);
    let s = wait_for(SETTLE, "the failure shown in status", || {
        let s = status(&env);
        (mirrored(&env, "ok.md").is_some() && s.state != "pushing" && s.failed_paths == 1)
            .then_some(s)
    });
    assert_ne!(s.state, "idle", "{s}");
    assert_eq!(s.state, "retrying", "{s}");
    assert_eq!(s["failed_sample"][0], "blocked.md", "{s}");
    assert!(s["failed_error"].as_str().is_some(), "{s}");
    assert!(s.pending_paths >= 1, "{s}");
    assert!(s.last_success_age_s.is_none(), "{s}");
    // Cleared on the remote: retried by itself (back-off), pushed, idle.
    std::fs::remove_dir_all(&blocker).unwrap();
    wait_for(SETTLE, "blocked.md pushed after the obstacle went", || {
        mirrored(&env, "blocked.md")
    });
    wait_for(PUSHED, "idle with nothing failed", || {
        let s = status(&env);
        (settled(&env) && s.failed_paths == 0 && s.last_success_age_s.is_some()).then_some(())
    });
}

#[test]
fn a_full_remote_disk_keeps_paths_pending_and_catches_up_when_space_is_freed() {
    let _serial = serial();
    let env = TestEnv::new();
    let mirror_dir = mirror(&env);
    let disk = Tmpfs::mount(&mirror_dir, "256k");
    for i in 0..40 {
        env.write_file(&format!("f{i:02}.md"), vec![b'x'; 16 * 1024]);
    }
    let _daemon = Daemon::start(&env);
    let s = wait_for(SETTLE, "the disk-full failure in status", || {
        let s = status(&env);
        (s.state != "pushing" && s["next_retry_in_s"].is_number()).then_some(s)
    });
    assert_ne!(s.state, "idle", "{s}");
    assert!(s.pending_paths >= 1, "{s}");
    assert!(s.failed_paths >= 1, "{s}");
    assert!(s.last_success_age_s.is_none(), "{s}");
    // Space freed: everything goes through without anyone asking.
    let out = Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(&mirror_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "remount: {out:?}");
    wait_for(SETTLE, "every file pushed after space was freed", || {
        ((0..40).all(|i| mirrored(&env, &format!("f{i:02}.md")).is_some())
            && settled(&env)
            && status(&env).failed_paths == 0)
            .then_some(())
    });
    drop(disk);
}

/// A loopback listener that accepts connections and never answers.
fn silent_listener() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// A journal with one file whose remote accepts connections and never answers.
fn hung_remote_env() -> TestEnv {
    let port = silent_listener();
    let env = TestEnv::new()
        .with_sas("sv=2022-11-02&ss=b&srt=co&sp=rwl&se=2099-01-01T00:00:00Z&sig=AAAA");
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{port}/devstoreaccount1/hung\"\n"
    ));
    env.write_file("a.md", "a");
    env
}

#[test]
fn ctl_push_during_a_hung_push_answers_at_once_that_it_joined() {
    let _serial = serial();
    let env = hung_remote_env();
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up push hanging", || {
        (status(&env).state == "pushing").then_some(())
    });
    let out = env.run_with_timeout(&["ctl", "push", "--json"], Duration::from_secs(10));
    out.assert_code(0);
    let reply: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(
        reply["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("joined")),
        "{reply}"
    );
    let s = status(&env);
    assert_ne!(s.state, "idle", "{s}");
    assert!(s.pending_paths >= 1, "{s}");
}

#[test]
fn a_remote_that_never_answers_is_reported_as_timed_out_within_seconds() {
    let _serial = serial();
    let env = hung_remote_env();
    let _daemon = Daemon::start(&env);
    // A 1 KiB Put Blob gets seconds, not minutes: the first try's timeout is reported
    // as it happens, while the push goes on retrying.
    let s = wait_for(
        Duration::from_secs(30),
        "a timeout reported in the status",
        || {
            let s = status(&env);
            s["retrying"]
                .as_str()
                .is_some_and(|r| r.contains("timed out"))
                .then_some(s)
        },
    );
    let text = s["retrying"].as_str().unwrap_or_default();
    assert!(text.starts_with("retrying since "), "{s}");
    assert!(s["retrying_since_unix"].as_i64() > Some(0), "{s}");
    assert_ne!(s.state, "idle", "{s}");
    assert!(s.pending_paths >= 1, "{s}");
    assert!(!s.verdict.safe, "{s}");
    assert!(
        s["verdict"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("retrying since ")),
        "{s}"
    );
    let out = env.run_with_timeout(&["ctl", "status"], Duration::from_secs(10));
    out.assert_code(0);
    assert!(
        out.stdout.contains("requests       retrying since "),
        "{}",
        out.stdout
    );
}

/// Debian's libfaketime (installed by scripts/test).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[test]
fn ages_stay_true_when_the_wall_clock_steps_back() {
    let _serial = serial();
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install libfaketime (scripts/test does)"
    );
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    // The daemon's wall clock follows this file (re-read on every call); its monotonic
    // clock does not, as the kernel's does not when the wall clock is set.
    let offset = env.root().join("faketime");
    set_offset(&offset, "+0");
    let _daemon = Daemon::start_with(
        &env,
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "a.md").is_some()
            && settled(&env)
            && status(&env).last_success_age_s.is_some())
        .then_some(())
    });
    // The clock steps back an hour: the last success is not -3600 s in the future.
    set_offset(&offset, "-3600");
    let s = status(&env);
    let age = s.last_success_age_s.unwrap();
    assert!((0..60).contains(&age), "last_success_age_s {age}: {s}");
    // A success after the step carries the daemon's (stepped) wall clock as its timestamp.
    env.write_file("b.md", "b");
    wait_for(PUSHED, "b.md pushed with the clock stepped back", || {
        let s = status(&env);
        let last = s["last_success_unix"].as_i64()?;
        (mirrored(&env, "b.md").is_some() && last < unix_now() - 3000).then_some(())
    });
    // And forward again: that success is not an hour old.
    set_offset(&offset, "+0");
    let s = status(&env);
    let age = s.last_success_age_s.unwrap();
    assert!((0..60).contains(&age), "last_success_age_s {age}: {s}");
    let age = s["last_push_age_s"].as_u64();
    assert!(age.is_some_and(|a| a < 60), "last_push_age_s: {s}");
}

/// Replace the offset file whole (libfaketime re-reads it on every call).
fn set_offset(file: &Path, offset: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset}\n")).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Fills the filesystem holding `dir` with one file; returns it.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[test]
fn a_full_state_filesystem_at_start_up_is_an_error_state_that_clears() {
    let _serial = serial();
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    let _state = Tmpfs::mount(&env.state_home(), "512k");
    let filler = fill(&env.state_home());
    let mut daemon = Daemon::start(&env);
    let s = wait_for(SETTLE, "the error state", || {
        let s = status(&env);
        (s.state == "error").then_some(s)
    });
    assert!(
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("state index")),
        "{s}"
    );
    assert!(mirrored(&env, "a.md").is_none());
    // Space freed: it catches up by itself.
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        SETTLE,
        "a.md pushed once the state filesystem has room",
        || mirrored(&env, "a.md"),
    );
    wait_for(PUSHED, "idle", || settled(&env).then_some(()));
    assert!(daemon.exited().is_none());
}

#[test]
fn no_inotify_instance_at_start_up_is_limited_mode_and_the_watcher_is_retried() {
    let _serial = serial();
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    let instances = Sysctl::set("fs.inotify.max_user_instances", 0);
    let daemon = Daemon::start(&env);
    let s = wait_for(SETTLE, "the start-up pass in limited mode", || {
        let s = status(&env);
        (mirrored(&env, "a.md").is_some() && s.state == "idle").then_some(s)
    });
    assert_eq!(s.watch, "limited", "{s}");
    assert!(
        s["watch_issue"]
            .as_str()
            .is_some_and(|m| m.contains("fs.inotify.max_user_instances")),
        "{s}"
    );
    // Instances to be had again: the watcher is retried and watches everything.
    drop(instances);
    wait_for(PUSHED, "the watcher back", || {
        (status(&env).watch == "ok").then_some(())
    });
    env.write_file("b.md", "b");
    wait_for(PUSHED, "b.md through the watcher", || {
        mirrored(&env, "b.md")
    });
    drop(daemon);
}

/// inotify watches this user holds now, all processes together (what
/// `fs.inotify.max_user_watches` limits).
fn watches_in_use() -> u64 {
    let mut n = 0;
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(proc.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(text) = std::fs::read_to_string(fd.path()) {
                n += text
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count() as u64;
            }
        }
    }
    n
}

#[test]
fn the_watch_limit_reached_at_run_time_is_limited_mode_naming_the_sysctl() {
    let _serial = serial();
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "a.md").is_some() && settled(&env)).then_some(())
    });
    assert_eq!(status(&env).watch, "ok");
    // No watch to spare: new directories cannot be watched.
    let watches = Sysctl::set("fs.inotify.max_user_watches", watches_in_use());
    for i in 0..5 {
        env.write_file(&format!("new{i}/n.md"), format!("n{i}"));
    }
    let s = wait_for(PUSHED, "limited mode", || {
        let s = status(&env);
        (s.watch == "limited").then_some(s)
    });
    drop(watches);
    assert!(
        s["watch_issue"]
            .as_str()
            .is_some_and(|m| m.contains("fs.inotify.max_user_watches")),
        "{s}"
    );
    // What the new directories held is pushed (their creation was seen).
    for i in 0..5 {
        let rel = format!("new{i}/n.md");
        wait_for(PUSHED, &rel, || mirrored(&env, &rel));
    }
    // The limit raised again (the guard restored it): everything is watched, no restart.
    wait_for(PUSHED, "watched in full again", || {
        (status(&env).watch == "ok").then_some(())
    });
    env.write_file("new3/later.md", "later");
    wait_for(PUSHED, "new3/later.md through the watcher", || {
        mirrored(&env, "new3/later.md")
    });
}

#[test]
fn after_an_unmount_inside_the_root_the_directory_underneath_is_watched() {
    let _serial = serial();
    let env = TestEnv::new();
    env.write_file("sub/under.md", "under");
    let sub = env.journal().join("sub");
    // Mounted before the daemon starts: its watch is on the mounted filesystem's root,
    // which the kernel drops on unmount.
    let mount = Tmpfs::mount(&sub, "4m");
    std::fs::write(sub.join("on-tmpfs.md"), "on tmpfs").unwrap();
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "sub/on-tmpfs.md").is_some() && settled(&env)).then_some(())
    });
    mount.unmount();
    // The covered file shows again, and later writes there are seen.
    wait_for(PUSHED, "the uncovered file", || {
        mirrored(&env, "sub/under.md")
    });
    std::fs::write(sub.join("after.md"), "after").unwrap();
    wait_for(PUSHED, "a file written after the unmount", || {
        mirrored(&env, "sub/after.md")
    });
}

/// B's journal on a small disk: A's 40 files of 16 KiB do not all fit. The pull stops short
/// with the files it could not write named, nothing half-written under a final name, no
/// temporary file left, and nothing pushed back (no delete of what did not come down); with
/// space freed the next pull finishes and the trees are the same.
#[test]
fn a_full_local_disk_during_a_pull_leaves_whole_files_and_the_next_pull_finishes() {
    let _serial = serial();
    let az = common::Azurite::shared();
    let container = common::unique_container("pull-disk-full");
    let (a, b) = (
        TestEnv::new().with_sas(az.account_sas()),
        TestEnv::new().with_sas(az.account_sas()),
    );
    for env in [&a, &b] {
        env.write_config(&format!(
            "[remote]\nurl = \"{}/journal\"\n\n[sync]\nmode = \"two-way\"\n",
            az.container_url(&container)
        ));
    }
    for i in 0..40 {
        a.write_file(
            &format!("f{i:02}.md"),
            vec![b'a' + (i % 26) as u8; 16 * 1024],
        );
    }
    a.run(&["push"]).assert_code(0);
    let disk = Tmpfs::mount(&b.journal(), "256k");

    let out = b.run(&["pull", "--json"]);
    assert_ne!(out.status.code(), Some(0), "{}", out.stdout);
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let failed = report["failed"].as_array().cloned().unwrap_or_default();
    assert!(!failed.is_empty(), "{report:#}");
    // Whatever is under a final name is A's file, whole.
    let here = common::tree(&b.journal());
    let theirs = common::tree(&a.journal());
    assert!(here.len() < 40, "{}", here.len());
    for (name, bytes) in &here {
        assert_eq!(Some(bytes), theirs.get(name), "{name} is not A's file");
    }
    let stray: Vec<_> = walk_names(&b.journal())
        .into_iter()
        .filter(|n| !theirs.contains_key(n))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
    // B's push sends nothing back and deletes nothing.
    let pushed = b.run(&["push", "--json"]);
    let pushed: serde_json::Value = serde_json::from_str(pushed.stdout.trim()).unwrap();
    assert_eq!(pushed["uploaded"], 0, "{pushed:#}");
    assert!(
        pushed["deleted"].as_array().is_none_or(Vec::is_empty),
        "{pushed:#}"
    );
    assert_eq!(
        az.list_blobs(&container)
            .iter()
            .filter(|b| !b.name.starts_with("journal/.devlog-history/"))
            .count(),
        40
    );

    // Space freed: the next pull brings the rest.
    let out = Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(b.journal())
        .output()
        .unwrap();
    assert!(out.status.success(), "remount: {out:?}");
    b.run(&["pull"]).assert_code(0);
    assert_eq!(common::tree(&b.journal()), theirs);
    drop(disk);
}

/// Every name below `dir` (files of any kind, hidden ones too), relative.
fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}
