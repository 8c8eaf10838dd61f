//! The watcher and the daemon's start-up telling the truth: a symlinked or replaced root,
//! unreadable directories, names that are not UTF-8, `pending` while an upload hangs, the
//! instance lock held by a one-shot push, a read-only state index. Each drives the real
//! `devlogd run` against the built-in directory remote.

use crate::common;

use common::TestEnv;
use common::daemon::{
    Daemon, HeldLock, NOBODY, give_env_to, instance_lock_path, mirror, mirrored, run_as, settled,
    settled_as, status, status_as,
};
use common::{poll_until, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Start-up passes and settling.
const SETTLE: Duration = Duration::from_secs(60);
/// A change reaching the remote through the watcher (the fallback rescan is an hour away).
const PUSHED: Duration = Duration::from_secs(20);

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_symlinked_root_is_watched_where_it_points() {
    let env = TestEnv::new();
    let real = env.root().join("Dropbox/journal");
    std::fs::create_dir_all(real.join("old")).unwrap();
    std::fs::write(real.join("old/a.md"), "a").unwrap();
    std::fs::remove_dir(env.journal()).unwrap();
    std::os::unix::fs::symlink(&real, env.journal()).unwrap();
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "old/a.md").is_some() && settled(&env)).then_some(())
    });
    // Directly in the root, in a directory that existed, in a directory made later.
    std::fs::write(real.join("top.md"), "top").unwrap();
    wait_for(PUSHED, "top.md", || mirrored(&env, "top.md"));
    std::fs::write(real.join("old/b.md"), "b").unwrap();
    wait_for(PUSHED, "old/b.md", || mirrored(&env, "old/b.md"));
    std::fs::create_dir(real.join("later")).unwrap();
    std::fs::write(real.join("later/c.md"), "c").unwrap();
    wait_for(PUSHED, "later/c.md", || mirrored(&env, "later/c.md"));
    let s = status(&env);
    assert!(s["watch_limited"].is_null(), "{s}");
    assert!(s.watch_issue.is_none(), "{s}");
}

#[test]
fn a_replaced_or_returning_root_is_watched_again_with_a_full_pass() {
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "a.md").is_some() && settled(&env)).then_some(())
    });
    let journal = env.journal();
    // mv ~/.devlog x; mkdir ~/.devlog; echo a > ~/.devlog/new.md
    std::fs::rename(&journal, env.home().join("old-journal")).unwrap();
    std::fs::create_dir(&journal).unwrap();
    std::fs::write(journal.join("new.md"), "new").unwrap();
    wait_for(PUSHED, "new.md in the new root", || {
        mirrored(&env, "new.md")
    });
    // Watched again, directories made later included.
    std::fs::write(journal.join("later.md"), "later").unwrap();
    wait_for(PUSHED, "later.md", || mirrored(&env, "later.md"));
    std::fs::create_dir(journal.join("sub")).unwrap();
    std::fs::write(journal.join("sub/x.md"), "x").unwrap();
    wait_for(PUSHED, "sub/x.md", || mirrored(&env, "sub/x.md"));

    // Gone for a while: status says so. Back: watched and passed in full.
    std::fs::rename(&journal, env.home().join("away")).unwrap();
    let s = wait_for(PUSHED, "status to report the missing root", || {
        let s = status(&env);
        s["watch_issue"]
            .as_str()
            .is_some_and(|m| m.contains("missing"))
            .then_some(s)
    });
    assert_eq!(s.watch, "root missing", "{s}");
    std::fs::create_dir(&journal).unwrap();
    std::fs::write(journal.join("back.md"), "back").unwrap();
    wait_for(PUSHED, "back.md", || mirrored(&env, "back.md"));
    std::fs::write(journal.join("after.md"), "after").unwrap();
    wait_for(PUSHED, "after.md", || mirrored(&env, "after.md"));
    wait_for(SETTLE, "idle with the watch ok", || {
        let s = status(&env);
        (settled(&env) && s.watch_issue.is_none()).then_some(())
    });
}

#[test]
fn an_unreadable_directory_is_skipped_with_one_warning_and_shown_in_status() {
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    env.write_file("private/secret.md", "s");
    let journal = env.journal();
    for d in ["target/debug", ".cache/x", "private"] {
        std::fs::create_dir_all(journal.join(d)).unwrap();
    }
    give_env_to(&env, NOBODY);
    // Root-owned and mode 000: the daemon (uid 65534) can neither list nor watch them.
    for d in ["target/debug", ".cache", "private"] {
        let p = journal.join(d);
        std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
        chmod(&p, 0o000);
    }
    let uid = Some(NOBODY);
    let daemon = Daemon::start_as(&env, NOBODY);
    // Not idle: what `private` holds should be on the remote and is not. It is a path the
    // daemon failed to push, shown and retried.
    let s = wait_for(SETTLE, "the start-up pass", || {
        let s = status_as(&env, uid);
        (mirrored(&env, "a.md").is_some()
            && s.state == "retrying"
            && s["failed_sample"].to_string().contains("private"))
        .then_some(s)
    });
    assert_eq!(s.failed_paths, 1, "{s}");
    assert_eq!(s["unwatched_dirs"], 1, "only the accepted one counts: {s}");
    let sample = s["unwatched_dirs_sample"].to_string();
    assert!(sample.contains("private"), "{s}");
    assert!(
        !sample.contains("target") && !sample.contains(".cache"),
        "{s}"
    );
    assert_eq!(s.watch, "partial", "{s}");
    let human = run_as(&env, uid, &["ctl", "status"]);
    human.assert_code(0);
    assert!(human.stdout.contains("private"), "{}", human.stdout);
    assert!(
        !human.stdout.contains("watch          ok"),
        "{}",
        human.stdout
    );

    // The rest is watched: the root, and a directory made later.
    env.write_file("new.md", "n");
    wait_for(PUSHED, "new.md", || mirrored(&env, "new.md"));
    env.write_file("later/b.md", "b");
    wait_for(PUSHED, "later/b.md", || mirrored(&env, "later/b.md"));
    let log = daemon.log_text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("cannot watch") && l.contains("private"))
        .count();
    assert_eq!(warnings, 1, "one warning: {log}");
    assert!(!log.contains("target/debug"), "{log}");

    // Readable again: watched and backed up, and the status says so.
    chmod(&journal.join("private"), 0o755);
    wait_for(PUSHED, "private/secret.md", || {
        mirrored(&env, "private/secret.md")
    });
    wait_for(PUSHED, "the watch ok again", || {
        let s = status_as(&env, uid);
        (s["unwatched_dirs"] == 0 && s.watch == "ok").then_some(())
    });
    wait_for(PUSHED, "idle with nothing failed", || {
        let s = status_as(&env, uid);
        (settled_as(&env, uid) && s.failed_paths == 0).then_some(())
    });
}

#[test]
fn a_name_that_is_not_utf8_is_reported_once() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new();
    let daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));
    let bad = env
        .journal()
        .join(std::ffi::OsStr::from_bytes(b"bad\xffname.md"));
    let shown = "bad\u{FFFD}name.md";
    std::fs::write(&bad, "1").unwrap();
    wait_for(PUSHED, "a warning naming the file", || {
        let log = daemon.log_text();
        (log.contains(shown) && log.contains("UTF-8")).then_some(())
    });
    for (i, marker) in ["m1.md", "m2.md"].iter().enumerate() {
        std::fs::write(&bad, format!("again {i}")).unwrap();
        env.write_file(marker, "m");
        wait_for(PUSHED, marker, || mirrored(&env, marker));
    }
    let log = daemon.log_text();
    let lines = log.lines().filter(|l| l.contains(shown)).count();
    assert_eq!(lines, 1, "said once: {log}");
}

#[test]
fn pending_counts_paths_in_flight_and_changed_while_an_upload_hangs() {
    let env = TestEnv::new();
    env.write_file("first.md", "first");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "first.md").is_some() && settled(&env)).then_some(())
    });
    // The directory remote's writers' lock, held: every upload hangs (stalled, not refused).
    let stall = HeldLock::take(&mirror(&env).join(".devlogd.lock"), "");
    env.write_file("a.md", "a");
    let s = wait_for(PUSHED, "a push hanging with a.md pending", || {
        let s = status(&env);
        (s.state == "pushing" && s.pending_paths >= 1).then_some(s)
    });
    assert!(s["in_flight_paths"].as_u64() >= Some(1), "{s}");
    env.write_file("b.md", "b");
    env.write_file("c.md", "c");
    wait_for(PUSHED, "a.md in flight plus b.md and c.md pending", || {
        let s = status(&env);
        (s.state == "pushing" && s.pending_paths >= 3).then_some(())
    });
    drop(stall);
    wait_for(
        SETTLE,
        "everything on the remote and nothing pending",
        || {
            (["a.md", "b.md", "c.md"]
                .iter()
                .all(|f| mirrored(&env, f).is_some())
                && settled(&env))
            .then_some(())
        },
    );
}

#[test]
fn the_daemon_waits_for_a_one_shot_push_holding_the_lock() {
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    // What a one-shot `devlogd push` holds while it runs.
    let lock = HeldLock::take(&instance_lock_path(&env), "4242\n");
    let mut daemon = Daemon::spawn(&env);
    wait_for(PUSHED, "the daemon to say it waits", || {
        if let Some(st) = daemon.exited() {
            panic!("devlogd run exited ({st}):\n{}", daemon.log_text());
        }
        daemon
            .log_text()
            .contains("waiting for the running push (pid 4242) to finish")
            .then_some(())
    });
    assert!(daemon.exited().is_none(), "{}", daemon.log_text());
    drop(lock);
    wait_for(SETTLE, "ready and pushing once the lock is free", || {
        if let Some(st) = daemon.exited() {
            panic!("devlogd run exited ({st}):\n{}", daemon.log_text());
        }
        mirrored(&env, "a.md")
    });
    wait_for(SETTLE, "idle", || settled(&env).then_some(()));
    env.run(&["ctl", "stop"]).assert_code(0);
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));

    // SIGTERM while waiting stops it cleanly.
    let _lock = HeldLock::take(&instance_lock_path(&env), "4243\n");
    let mut daemon = Daemon::spawn(&env);
    wait_for(PUSHED, "the daemon to wait again", || {
        daemon
            .log_text()
            .contains("waiting for the running push (pid 4243)")
            .then_some(())
    });
    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_read_only_state_index_is_named_with_the_fix_and_changes_stay_pending() {
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    give_env_to(&env, NOBODY);
    let uid = Some(NOBODY);
    let mut daemon = Daemon::start_as(&env, NOBODY);
    wait_for(SETTLE, "the start-up pass", || {
        (mirrored(&env, "a.md").is_some() && settled_as(&env, uid)).then_some(())
    });
    run_as(&env, uid, &["ctl", "stop"]).assert_code(0);
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let state_dir = env.state_home().join("devlog");
    let index = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "sqlite")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("index-"))
        })
        .expect("the state index");
    chmod(&index, 0o444);
    let _daemon = Daemon::start_as(&env, NOBODY);
    env.write_file("b.md", "b");
    // The start-up pass can fail on the index before the watcher has b.md: wait for both.
    let s = poll_until(SETTLE, || {
        let s = status_as(&env, uid);
        let read_only = s
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("read-only"));
        (read_only && s.pending_paths >= 1).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "no read-only error with b.md pending: {}",
            status_as(&env, uid)
        )
    });
    assert_ne!(s.state, "offline", "{s}");
    let error = s.last_error.as_deref().unwrap_or_default();
    assert!(error.contains(&index.display().to_string()), "{error}");
    assert!(error.contains("make it writable"), "{error}");
    let human = run_as(&env, uid, &["ctl", "status"]);
    assert!(human.stdout.contains("read-only"), "{}", human.stdout);

    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", index.display()));
        if file.exists() {
            chmod(&file, 0o644);
        }
    }
    run_as(&env, uid, &["ctl", "push"]).assert_code(0);
    wait_for(SETTLE, "b.md recorded and nothing pending", || {
        (mirrored(&env, "b.md").is_some() && settled_as(&env, uid)).then_some(())
    });
}

#[test]
fn a_read_only_state_directory_at_start_up_keeps_the_daemon_running_and_waiting() {
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    give_env_to(&env, NOBODY);
    let uid = Some(NOBODY);
    // A one-shot push makes the index, then the state directory becomes read-only.
    run_as(&env, uid, &["push"]).assert_code(0);
    let state_dir = env.state_home().join("devlog");
    let modes: Vec<(std::path::PathBuf, u32)> = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("devlogd.lock"))
        .map(|p| {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            (p, mode)
        })
        .collect();
    for (p, mode) in &modes {
        chmod(p, mode & 0o555);
    }
    chmod(&state_dir, 0o555);
    // It starts (no exit 2, which the service manager would not restart) and says why
    // nothing is pushed.
    let _daemon = Daemon::start_as(&env, NOBODY);
    env.write_file("b.md", "b");
    let s = wait_for(SETTLE, "the read-only index in status", || {
        let s = status_as(&env, uid);
        (s.state == "error").then_some(s)
    });
    let error = s.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("read-only"), "{s}");
    assert!(error.contains("make it writable"), "{s}");
    wait_for(PUSHED, "b.md pending", || {
        (status_as(&env, uid).pending_paths >= 1).then_some(())
    });
    chmod(&state_dir, 0o700);
    for (p, mode) in &modes {
        chmod(p, *mode);
    }
    run_as(&env, uid, &["ctl", "push"]).assert_code(0);
    wait_for(SETTLE, "b.md pushed and nothing pending", || {
        (mirrored(&env, "b.md").is_some() && settled_as(&env, uid)).then_some(())
    });
}
