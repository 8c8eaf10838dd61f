//! `devlogd run` and `devlogd ctl` as a user meets them: the real binary watching a real
//! directory and pushing to a real Azurite (or the directory remote), driven through its
//! control socket and signals.

use crate::common;

use common::daemon::{Daemon, settled, status};
use common::{Azurite, TestEnv, md5_b64, unique_container, wait_for};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(60);

fn azure_world(az: &Azurite) -> (TestEnv, String) {
    let container = unique_container("daemon");
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    (env, container)
}

fn blob_md5s(az: &Azurite, container: &str) -> BTreeMap<String, String> {
    az.list_blobs(container)
        .into_iter()
        .filter(|b| !b.name.starts_with(".devlog-history/")) // replaced versions
        .map(|b| (b.name, b.content_md5_b64.unwrap_or_default()))
        .collect()
}

#[test]
fn a_written_file_reaches_the_remote_within_about_a_second() {
    // From the write to the blob listed with the new content's MD5, over 5 edits. The daemon
    // waits out a 300 ms debounce, then puts a few bytes: well under a second on an idle
    // machine. The bounds leave room for a loaded 2-core CI runner (other test daemons, a
    // compiler): the median within 2 s keeps the promise "about a second"; any one edit
    // within 5 s still fails a daemon that waits for a timer or a rescan (seconds to an hour).
    const MEDIAN_BOUND: Duration = Duration::from_secs(2);
    const EACH_BOUND: Duration = Duration::from_secs(5);
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));
    let mut latencies = Vec::new();
    for i in 0..5 {
        let body = format!("entry {i}\n");
        let want = md5_b64(body.as_bytes());
        let written = Instant::now();
        env.write_file("today.md", &body);
        wait_for(SETTLE, "today.md on the remote", || {
            let listed = blob_md5s(az, &container);
            (listed.get("today.md") == Some(&want)).then_some(())
        });
        latencies.push(written.elapsed());
    }
    latencies.sort();
    let (median, max) = (latencies[2], latencies[4]);
    eprintln!(
        "write-to-blob latency over 5 edits (debounce 300 ms): min {:?}, median {median:?}, max {max:?}",
        latencies[0]
    );
    assert!(
        median <= MEDIAN_BOUND,
        "median write-to-blob latency {median:?} over {MEDIAN_BOUND:?}: {latencies:?}"
    );
    assert!(
        max <= EACH_BOUND,
        "slowest write-to-blob latency {max:?} over {EACH_BOUND:?}: {latencies:?}"
    );
}

#[test]
fn editor_save_patterns_push_exactly_the_final_content_once() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    let root = env.journal();
    env.write_file("notes.md", "v0\n");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));

    type Save = fn(&Path, &[u8]);
    let patterns: [(&str, Save); 4] = [
        ("write in place", |p, body| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(p)
                .unwrap();
            for chunk in body.chunks(3) {
                f.write_all(chunk).unwrap();
                f.flush().unwrap();
            }
        }),
        ("vim: 4913 probe, rename to file~, write new", |p, body| {
            let dir = p.parent().unwrap();
            let probe = dir.join("4913");
            std::fs::write(&probe, b"").unwrap();
            std::fs::remove_file(&probe).unwrap();
            let backup = dir.join("notes.md~");
            std::fs::rename(p, &backup).unwrap();
            std::fs::write(p, body).unwrap();
            std::fs::remove_file(&backup).unwrap();
        }),
        ("atomic temp file and rename", |p, body| {
            let tmp = p.parent().unwrap().join(".notes.md.tmp-123");
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, p).unwrap();
        }),
        ("truncate, then write", |p, body| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(0).unwrap();
            drop(f);
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(body).unwrap();
        }),
    ];
    for (i, (name, save)) in patterns.iter().enumerate() {
        let before = status(&env).files_uploaded;
        let body = format!("# notes\nsaved by pattern {i}: {name}\n").into_bytes();
        save(&root.join("notes.md"), &body);
        wait_for(SETTLE, name, || {
            (az.get_blob(&container, "notes.md").as_deref() == Some(body.as_slice())
                && settled(&env))
            .then_some(())
        });
        let uploads = status(&env).files_uploaded - before;
        assert_eq!(uploads, 1, "{name}: uploads");
    }
    let names: Vec<String> = blob_md5s(az, &container).into_keys().collect();
    assert_eq!(
        names,
        vec!["notes.md"],
        "no editor temporaries on the remote"
    );
}

#[test]
fn a_burst_of_1000_files_goes_in_a_handful_of_pushes() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));
    let pushes_before = status(&env).pushes;
    let mut want = BTreeMap::new();
    for i in 0..1000 {
        let rel = format!("burst/d{}/n{i}.md", i % 10);
        let body = format!("note {i}");
        want.insert(rel.clone(), md5_b64(body.as_bytes()));
        env.write_file(&rel, body);
    }
    wait_for(SETTLE, "1000 blobs", || {
        (blob_md5s(az, &container) == want && settled(&env)).then_some(())
    });
    let pushes = status(&env).pushes - pushes_before;
    eprintln!("1000 files pushed in {pushes} pushes");
    assert!(pushes <= 20, "{pushes} pushes for one burst");
}

#[test]
fn a_file_written_continuously_is_pushed_while_it_is_written() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    let path = env.write_file("events/log.jsonl", "{\"start\":true}\n");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || {
        (az.get_blob(&container, "events/log.jsonl").is_some() && settled(&env)).then_some(())
    });
    let initial_len = std::fs::metadata(&path).unwrap().len() as usize;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let started = Instant::now();
    let mut seen_while_writing = None;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(8) {
        writeln!(file, "{{\"n\":{n}}}").unwrap();
        n += 1;
        let remote_len = az
            .get_blob(&container, "events/log.jsonl")
            .map_or(0, |b| b.len());
        if seen_while_writing.is_none() && remote_len > initial_len {
            seen_while_writing = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50)); // the writer's pace, not synchronisation
    }
    drop(file);
    let first = seen_while_writing.expect("max_delay: pushed before the writes stopped");
    eprintln!("a file appended every 50 ms was first pushed after {first:?} (max_delay 5 s)");
    let final_bytes = std::fs::read(&path).unwrap();
    wait_for(SETTLE, "the final content", || {
        (az.get_blob(&container, "events/log.jsonl").as_deref() == Some(final_bytes.as_slice()))
            .then_some(())
    });
}

fn many_files(env: &TestEnv, n: usize) -> BTreeMap<String, String> {
    let mut want = BTreeMap::new();
    for i in 0..n {
        let rel = format!("d{:02}/n{i:04}.md", i % 50);
        let body = format!("note {i} {}", "x".repeat(i % 200));
        want.insert(rel.clone(), md5_b64(body.as_bytes()));
        env.write_file(&rel, body);
    }
    want
}

/// A daemon whose start-up pass is pushing 2,000 files, caught once the first blobs exist.
fn daemon_mid_push(az: &Azurite) -> (TestEnv, String, BTreeMap<String, String>, Daemon) {
    let (env, container) = azure_world(az);
    let want = many_files(&env, 2000);
    let daemon = Daemon::start(&env);
    wait_for(SETTLE, "the push to be under way", || {
        (!az.list_blobs(&container).is_empty()).then_some(())
    });
    (env, container, want, daemon)
}

#[test]
fn kill_9_during_a_push_loses_nothing() {
    let az = Azurite::shared();
    let (env, container, want, mut daemon) = daemon_mid_push(az);
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));
    let partial = az.list_blobs(&container).len();
    eprintln!("killed with {partial} of 2000 blobs uploaded");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "all 2000 blobs with the right MD5", || {
        (blob_md5s(az, &container) == want).then_some(())
    });
    wait_for(SETTLE, "idle", || settled(&env).then_some(()));
    env.run(&["verify"]).assert_code(0);
}

#[test]
fn sigterm_during_a_push_stops_cleanly_with_nothing_half_recorded() {
    let az = Azurite::shared();
    let (env, container, want, mut daemon) = daemon_mid_push(az);
    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    let socket = env.runtime_dir().join("devlog/devlogd.sock");
    assert!(!socket.exists(), "socket removed on stop");
    // Every file the index says is synced is on the remote: a dry run plans exactly the
    // files that are missing (at most also some that were uploaded but not yet recorded).
    let on_remote = blob_md5s(az, &container);
    let dry = env.run(&["push", "--dry-run", "--json"]);
    dry.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(dry.stdout.trim()).unwrap();
    let planned: Vec<String> = report["would_upload"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["path"].as_str().unwrap().to_string())
        .collect();
    for name in want.keys() {
        assert!(
            on_remote.contains_key(name) || planned.contains(name),
            "{name} is neither on the remote nor planned: recorded without an upload"
        );
    }
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the rest after restart", || {
        (blob_md5s(az, &container) == want && settled(&env)).then_some(())
    });
}

#[test]
fn changes_made_while_stopped_are_pushed_at_start_up() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    env.write_file("a.md", "a1");
    let mut daemon = Daemon::start(&env);
    wait_for(SETTLE, "a.md", || az.get_blob(&container, "a.md"));
    env.run(&["ctl", "stop"]).assert_code(0);
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    env.write_file("a.md", "a2, edited while stopped");
    env.write_file("new/b.md", "b");
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "both changes", || {
        (az.get_blob(&container, "a.md").as_deref() == Some(b"a2, edited while stopped".as_slice())
            && az.get_blob(&container, "new/b.md").is_some())
        .then_some(())
    });
}

#[test]
fn an_outage_is_ridden_out_without_burning_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let mut az = Azurite::start_persistent(dir.path(), None);
    let (env, container) = azure_world(&az);
    env.write_file("before.md", "before");
    let daemon = Daemon::start(&env);
    wait_for(SETTLE, "before.md", || az.get_blob(&container, "before.md"));
    az.stop();
    let cpu_before = daemon.cpu_seconds();
    let outage = Instant::now();
    let mut want = BTreeMap::new();
    for i in 0..20 {
        let rel = format!("offline/n{i}.md");
        env.write_file(&rel, format!("written offline {i}"));
        want.insert(rel, ());
    }
    wait_for(SETTLE, "status offline", || {
        let s = status(&env);
        (s.state == "offline").then_some(())
    });
    let s = status(&env);
    assert!(
        s.last_error.as_deref().unwrap().contains("cannot reach"),
        "{s}"
    );
    // Keep the service down for 10 s in all.
    let rest = Duration::from_secs(10).saturating_sub(outage.elapsed());
    std::thread::sleep(rest); // the outage itself, not synchronisation
    let cpu = daemon.cpu_seconds() - cpu_before;
    eprintln!("CPU used during a 10 s outage: {cpu:.3} s");
    assert!(cpu < 1.0, "{cpu} s of CPU while offline");
    az.restart();
    wait_for(
        Duration::from_secs(120),
        "everything after the outage",
        || {
            let names = blob_md5s(&az, &container);
            want.keys().all(|k| names.contains_key(k)).then_some(())
        },
    );
    wait_for(SETTLE, "idle again", || settled(&env).then_some(()));
    assert!(status(&env).last_error.is_none());
}

#[test]
fn control_socket_commands() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    env.write_file("a.md", "a");
    env.write_file("b.md", "b");
    let mut daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));

    // Socket and directory permissions.
    use std::os::unix::fs::PermissionsExt;
    let socket = env.runtime_dir().join("devlog/devlogd.sock");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);

    // status, human and JSON.
    let s = status(&env);
    for key in [
        "state",
        "root",
        "remote",
        "pending_paths",
        "last_push",
        "last_success_age_s",
        "rescans",
        "watcher_overflows",
        "files_in_index",
        "uptime_s",
        "version",
    ] {
        assert!(s.has(key), "status has {key}: {s}");
    }
    assert_eq!(s.state, "idle");
    assert_eq!(s.files_in_index, 2);
    assert!(!s.to_string().contains("sig="), "no secret in status");
    let human = env.run(&["ctl", "status"]);
    human.assert_code(0);
    assert!(
        human.stdout.contains("state          idle"),
        "{}",
        human.stdout
    );

    // ctl push --all repairs a blob deleted behind our back.
    assert!(az.delete_blob(&container, "a.md"));
    let out = env.run(&["ctl", "push", "--all", "--json"]);
    out.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(report["uploaded"], 1, "{report}");
    assert_eq!(az.get_blob(&container, "a.md").unwrap(), b"a");
    let out = env.run(&["ctl", "push"]);
    out.assert_code(0);
    assert!(out.stdout.contains("unchanged   2 files"), "{}", out.stdout);
    let out = env.run(&["ctl", "push", "--no-wait"]);
    out.assert_code(0);
    assert!(out.stdout.contains("queued"), "{}", out.stdout);

    // pause: nothing is pushed; resume: it catches up.
    env.run(&["ctl", "pause"]).assert_code(0);
    env.write_file("while-paused.md", "p");
    wait_for(SETTLE, "the change to be seen", || {
        let s = status(&env);
        (s.state == "paused" && s.pending_paths >= 1).then_some(())
    });
    assert!(
        az.get_blob(&container, "while-paused.md").is_none(),
        "pushed while paused"
    );
    env.run(&["ctl", "resume"]).assert_code(0);
    wait_for(SETTLE, "the catch-up after resume", || {
        az.get_blob(&container, "while-paused.md")
    });

    // reload: new rules apply without a restart; a bad config is refused, the old kept.
    let config = env.config_path();
    let good = format!(
        "[remote]\nurl = \"{}\"\n[sync]\ninclude = [\"*.md\", \"*.txt\"]\n",
        az.container_url(&container)
    );
    env.write_config(&good);
    env.run(&["ctl", "reload"]).assert_code(0);
    env.write_file("plain.txt", "text");
    wait_for(SETTLE, "plain.txt after reload", || {
        az.get_blob(&container, "plain.txt")
    });
    env.write_config("[sync]\nconcurency = 3\n");
    let out = env.run(&["ctl", "reload"]);
    out.assert_code(2);
    assert!(out.stderr.contains("concurency"), "{}", out.stderr);
    daemon.signal(libc::SIGHUP);
    env.write_file("still.md", "old config still works");
    wait_for(SETTLE, "a push with the old config", || {
        az.get_blob(&container, "still.md")
    });
    wait_for(SETTLE, "the SIGHUP rejection in the log", || {
        daemon.log_text().contains("reload refused").then_some(())
    });
    std::fs::write(&config, good).unwrap();

    // Malformed, oversized and silent clients get errors; the daemon carries on.
    let silent = UnixStream::connect(&socket).unwrap();
    for (request, want) in [
        (b"this is not json\n".to_vec(), "invalid JSON"),
        (b"{\"v\":1,\"cmd\":\"explode\"}\n".to_vec(), "bad request"),
        (
            b"{\"v\":9,\"cmd\":\"status\"}\n".to_vec(),
            "unsupported protocol version",
        ),
        (vec![b'x'; 70 * 1024], "request too large"),
    ] {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&request);
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert!(line.contains(want), "{want}: {line}");
        assert!(line.contains("\"ok\":false"), "{line}");
    }
    let s = status(&env);
    assert_eq!(
        s.state, "idle",
        "still serving with a silent client connected"
    );
    drop(silent);

    // A second daemon refuses to start.
    let second = env.run_with_timeout(&["run"], Duration::from_secs(20));
    second.assert_code(2);
    assert!(
        second
            .stderr
            .contains(&format!("already running, pid {}", daemon.pid())),
        "{}",
        second.stderr
    );

    // stop: exit 0, socket gone; ctl then says the daemon is not running.
    env.run(&["ctl", "stop"]).assert_code(0);
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(!socket.exists());
    let out = env.run(&["ctl", "status"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("devlogd is not running (socket"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_silent_client_is_timed_out() {
    let env = TestEnv::new();
    let _daemon = Daemon::start(&env);
    let socket = env.runtime_dir().join("devlog/devlogd.sock");
    let mut s = UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.contains("timed out waiting for a request"), "{text}");
    assert_eq!(status(&env).state, "idle");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let env = TestEnv::new();
    let socket = env.runtime_dir().join("devlog/devlogd.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    // A socket file nobody listens on, as a crashed daemon leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "idle after the start-up pass", || {
        (status(&env).state == "idle").then_some(())
    });
}

#[test]
fn an_unwatchable_tree_falls_back_to_periodic_scans_and_says_how_to_fix_it() {
    let env = TestEnv::new();
    for i in 0..5 {
        env.write_file(&format!("d{i}/a.md"), "a");
    }
    let daemon = Daemon::start_with(&env, &[("DEVLOGD_INOTIFY_MAX_WATCHES", "3")]);
    let s = status(&env);
    let limited = s["watch_limited"].as_str().unwrap_or_else(|| panic!("{s}"));
    assert!(
        limited.contains("sudo sysctl fs.inotify.max_user_watches="),
        "{limited}"
    );
    let log = daemon.log_text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("max_user_watches"))
        .count();
    assert_eq!(warnings, 1, "said once: {log}");
    let human = env.run(&["ctl", "status"]);
    assert!(
        human.stdout.contains("watch          LIMITED"),
        "{}",
        human.stdout
    );
}

#[test]
fn ctl_without_a_daemon_exits_3() {
    let env = TestEnv::new();
    for args in [&["ctl", "status"][..], &["ctl", "push"], &["ctl", "stop"]] {
        let out = env.run(args);
        out.assert_code(3);
        assert!(
            out.stderr.contains("devlogd is not running (socket"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn ctl_push_retries_at_once_when_the_remote_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut az = Azurite::start_persistent(dir.path(), None);
    let (env, container) = azure_world(&az);
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));
    az.stop();
    env.write_file("offline.md", "written while offline");
    wait_for(SETTLE, "status offline", || {
        (status(&env).state == "offline").then_some(())
    });
    az.restart();
    // No waiting for the back-off: an explicit push goes now, and has pushed when it returns.
    let out = env.run(&["ctl", "push", "--json"]);
    out.assert_code(0);
    assert_eq!(
        az.get_blob(&container, "offline.md").as_deref(),
        Some(b"written while offline".as_slice())
    );
    assert_eq!(status(&env).state, "idle");
}

#[test]
fn identical_ctl_pushes_queued_behind_a_running_push_run_once() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    let want = many_files(&env, 2000);
    // A client waits 5 s for a running push to end before it joins; the pass of 2000
    // files can be over by then on a fast machine, and the clients would then race each
    // other to the worker. 100 ms keeps the test about joining.
    let _daemon = Daemon::start_with(&env, &[("DEVLOGD_JOIN_WAIT_MS", "100")]);
    wait_for(SETTLE, "the start-up pass running", || {
        (status(&env).state == "pushing").then_some(())
    });
    // The start-up pass is pushing 2000 files; three `ctl push --all` arrive meanwhile. Each
    // answers at once that it joined (queued behind the running push), without waiting
    // for the pass to end.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            env.devlogd()
                .args(["ctl", "push", "--all", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in clients {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            reply["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("joined")),
            "{reply}"
        );
    }
    wait_for(SETTLE, "the queued --all to run", || {
        (settled(&env) && status(&env).pushes >= 2).then_some(())
    });
    assert_eq!(blob_md5s(az, &container), want);
    let s = status(&env);
    assert_eq!(
        s.pushes, 2,
        "the start-up pass and one coalesced --all: {s}"
    );
}

#[test]
fn tells_systemd_it_is_ready() {
    let env = TestEnv::new();
    let notify_path = env.root().join("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _daemon = Daemon::start_with(&env, &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())]);
    let mut messages = String::new();
    let mut buf = [0u8; 4096];
    while !messages.contains("READY=1") {
        let n = listener.recv(&mut buf).expect("a notification within 30 s");
        messages.push_str(&String::from_utf8_lossy(&buf[..n]));
        messages.push('\n');
    }
    assert!(messages.contains("STATUS="), "{messages}");
}

#[test]
fn an_event_on_a_directory_does_not_resend_its_files_and_symlinks_are_not_followed() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    for i in 0..20 {
        env.write_file(&format!("entries/n{i}.md"), format!("{i}"));
    }
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("private.md"), "outside the root").unwrap();
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));
    let before = status(&env);
    // An attribute change on the directory itself: the batch names the directory, which is
    // walked; its files are found unchanged in the index.
    let entries = env.journal().join("entries");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&entries, std::fs::Permissions::from_mode(0o750)).unwrap();
    // A symlink to a directory outside the root, and a real change to wait on.
    std::os::unix::fs::symlink(outside.path(), env.journal().join("linked")).unwrap();
    std::fs::write(outside.path().join("private.md"), "changed outside").unwrap();
    env.write_file("marker.md", "m");
    wait_for(SETTLE, "marker.md", || az.get_blob(&container, "marker.md"));
    wait_for(SETTLE, "idle", || {
        let s = status(&env);
        (settled(&env) && s.pushes > before.pushes).then_some(())
    });
    let uploaded = status(&env).files_uploaded - before.files_uploaded;
    assert_eq!(
        uploaded, 1,
        "only marker.md went; the 20 files were not sent again"
    );
    let names: Vec<String> = blob_md5s(az, &container).into_keys().collect();
    assert!(!names.iter().any(|n| n.contains("private")), "{names:?}");
    // A full pass does not follow the link either.
    let out = env.run(&["ctl", "push", "--all", "--json"]);
    out.assert_code(0);
    let names: Vec<String> = blob_md5s(az, &container).into_keys().collect();
    assert!(!names.iter().any(|n| n.contains("private")), "{names:?}");
}

#[test]
fn a_one_shot_push_goes_through_the_running_daemon() {
    let az = Azurite::shared();
    let (env, container) = azure_world(az);
    let _daemon = Daemon::start(&env);
    wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));
    env.write_file("a.md", "a");
    let out = env.run(&["push", "--all", "--json"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("devlogd is running: pushing through it"),
        "{}",
        out.stderr
    );
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(report["mode"], "all");
    wait_for(SETTLE, "a.md", || az.get_blob(&container, "a.md"));
}
