//! The worst cases of a backup, driven through the real binary against the directory
//! remote: a file swapped for a symlink mid-push, a push killed mid-write, a mirror of a
//! private journal, local errors that clear by themselves.

use crate::common;

use common::daemon::{Daemon, status};
use common::{TestEnv, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// A journal whose configured directory remote is `root/mirror`, one upload at a time.
fn mirrored() -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    let mirror = env.root().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    env.write_config(&format!(
        "[remote]\nurl = \"file://{}\"\n[sync]\nconcurrency = 1\n",
        mirror.display()
    ));
    (env, mirror)
}

/// Every file below `dir` whose path mentions devlogd's temporary files.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("devlogd-tmp") {
                out.push(p);
            }
        }
    }
    out
}

/// A large file (written sparse-free, so copying it takes a moment).
fn write_large(env: &TestEnv, rel: &str, mib: usize) -> PathBuf {
    let chunk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    let path = env.journal().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..mib {
        std::io::Write::write_all(&mut f, &chunk).unwrap();
    }
    path
}

#[test]
fn a_file_swapped_for_a_symlink_during_a_push_never_sends_the_link_target() {
    let (env, mirror) = mirrored();
    let secret = env.root().join("secret.txt");
    std::fs::write(&secret, b"the user's private key").unwrap();
    write_large(&env, "a-large.md", 256);
    let victim = env.write_file("z/s0.md", b"an ordinary entry\n");
    let mut push = env.devlogd();
    push.args(["push", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = push.spawn().unwrap();
    // While the large file is being copied (uploads go one at a time, in path order),
    // the entry is replaced by a symlink to a secret.
    wait_for(Duration::from_secs(60), "the large upload to start", || {
        (!temp_files(&mirror).is_empty()).then_some(())
    });
    std::fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink(&secret, &victim).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_ne!(
        std::fs::read(mirror.join("z/s0.md")).ok().as_deref(),
        Some(&b"the user's private key"[..]),
        "the link's target was uploaded: {stdout}"
    );
    assert!(
        std::fs::symlink_metadata(mirror.join("z/s0.md")).is_err()
            || std::fs::symlink_metadata(mirror.join("z/s0.md"))
                .unwrap()
                .is_file(),
        "the mirror holds no symlink"
    );
}

#[test]
fn a_push_killed_mid_write_leaves_no_temporary_files_behind() {
    let (env, mirror) = mirrored();
    let big = write_large(&env, "big.md", 256);
    let mut push = env.devlogd();
    push.args(["push"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = push.spawn().unwrap();
    wait_for(Duration::from_secs(60), "a temporary file", || {
        (!temp_files(&mirror).is_empty()).then_some(())
    });
    child.kill().unwrap(); // SIGKILL: no clean-up code runs
    child.wait().unwrap();
    assert!(
        !temp_files(&mirror).is_empty(),
        "the kill left a partial copy"
    );
    let out = env.run(&["push"]);
    out.assert_code(0);
    assert_eq!(
        temp_files(&mirror),
        Vec::<PathBuf>::new(),
        "stale temporary files are removed"
    );
    assert_eq!(
        std::fs::metadata(mirror.join("big.md")).unwrap().len(),
        std::fs::metadata(&big).unwrap().len()
    );
}

/// Runs `cmd` with umask 022, as in a typical login shell.
fn with_umask_022(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        })
    }
}

#[test]
fn the_mirror_of_a_private_journal_is_not_readable_by_other_users() {
    let env = TestEnv::new();
    // A home whose parents others may traverse, as on most systems.
    for dir in [env.root().to_path_buf(), env.data_home()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let diary = env.write_file("private/diary.md", b"my private diary\n");
    std::fs::set_permissions(
        diary.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::set_permissions(&diary, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = with_umask_022(env.devlogd().arg("push")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mirror = env.data_home().join("devlog/mirror");
    let copy = mirror.join("private/diary.md");
    assert_eq!(std::fs::read(&copy).unwrap(), b"my private diary\n");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&copy), 0o600, "{}", copy.display());
    assert_eq!(mode(&mirror.join("private")), 0o700);
    assert_eq!(mode(&mirror), 0o700);
    // Another local user cannot read the copy.
    let other = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        !other.status.success(),
        "another user read the mirror copy: {}",
        String::from_utf8_lossy(&other.stdout)
    );
}

/// Open descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn set_fd_limit(pid: u32, limit: usize) {
    let ok = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:")) // the soft limit; the hard one stays
        .status()
        .unwrap()
        .success();
    assert!(ok, "prlimit --nofile={limit}");
}

#[test]
fn files_the_daemon_cannot_open_for_a_while_are_kept_and_pushed_when_it_can() {
    let env = TestEnv::new();
    let mirror = env.data_home().join("devlog/mirror");
    env.write_file("first.md", b"first\n");
    let daemon = Daemon::start(&env);
    wait_for(Duration::from_secs(20), "the first pass", || {
        mirror.join("first.md").exists().then_some(())
    });
    // Out of descriptors: every open fails with EMFILE (the watcher's is already open).
    let pid = daemon.pid();
    set_fd_limit(pid, open_fds(pid));
    let names: Vec<String> = (0..20).map(|i| format!("later/n{i}.md")).collect();
    for n in &names {
        env.write_file(n, format!("{n}\n"));
    }
    // The condition is real: the daemon tried and could not open them.
    wait_for(
        Duration::from_secs(20),
        "the daemon to run out of descriptors",
        || {
            daemon
                .log_text()
                .contains("Too many open files")
                .then_some(())
        },
    );
    set_fd_limit(pid, 4096);
    // Within a retry's back-off: each pass that failed while descriptors ran out (the
    // start-up comparison with the remote's listing among them) doubles the worker's wait,
    // up to its cap of 300 s; on a loaded machine the window lasts long enough for several
    // (a full CI run once needed more than 90 s). The deadline covers the cap.
    wait_for(Duration::from_secs(330), "every file on the remote", || {
        names
            .iter()
            .all(|n| std::fs::read(mirror.join(n)).ok() == Some(format!("{n}\n").into_bytes()))
            .then_some(())
    });
    // And the daemon settles with nothing left waiting.
    wait_for(Duration::from_secs(30), "nothing waiting", || {
        let s = status(&env);
        (s.waiting_paths == 0 && s.state == "idle").then_some(())
    });
    drop(daemon);
}

/// The journal deleted whole, then a new entry: the day's events log starts again with one
/// line. Pushed as it is, it would put that line over the day's log on the remote, and a
/// restore would then find the log "already there" (the walkthrough's finding). An events
/// log is append-only: one shorter than its last pushed version is merged with it.
#[test]
fn an_events_log_started_again_after_the_root_was_deleted_keeps_its_earlier_lines() {
    let az = common::Azurite::shared();
    let container = common::unique_container("events-merge");
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n",
        az.container_url(&container)
    ));
    let log = "events/20261203-laptop-0123abcd.jsonl";
    let earlier = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n";
    env.write_file(log, earlier);
    // Enough entries for the mass-delete guard to hold their deletes.
    for i in 0..60 {
        env.write_file(&format!("entries/{i:02}.md"), format!("{i}\n"));
    }
    env.run(&["push"]).assert_code(0);

    std::fs::remove_dir_all(env.journal()).unwrap();
    env.write_file("entries/new.md", "new\n");
    env.write_file(log, "{\"n\":4}\n");
    env.run(&["push"]);
    let all = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n";
    assert_eq!(
        az.get_blob(&container, &format!("journal/{log}"))
            .as_deref(),
        Some(all.as_bytes()),
        "the remote's events log lost lines"
    );
    assert_eq!(
        std::fs::read_to_string(env.journal().join(log)).unwrap(),
        all
    );

    // The way back the verdict names brings the rest, and the log stays whole.
    env.run(&["restore"]).assert_code(0);
    for i in 0..60 {
        let rel = format!("entries/{i:02}.md");
        assert_eq!(
            std::fs::read_to_string(env.journal().join(&rel)).ok(),
            Some(format!("{i}\n")),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(env.journal().join(log)).unwrap(),
        all
    );
}
