//! What comes down from the remote is untrusted (issue 22, the download side): restore and
//! `conflicts --fetch` write only names a push would upload, every byte checked against the
//! listing, never over a file that appeared meanwhile. Driven through the real `devlogd`
//! binary against Azurite, the directory remote and a hostile endpoint.

use crate::common;

use common::backend::{AzureBackend, Backend, DirectoryBackend, world};
use common::daemon::{Daemon, NOBODY, settled_as, status_as};
use common::hostile::{Action, Hostile, ListedBlob, Req, Resp, md5_of};
use common::{Azurite, TestEnv, json, poll_until, unique_container, wait_for};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Every file below `dir` (symlinks and all): relative name → bytes. A file that vanishes
/// while it is read (a restore running) is left out.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let name = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if meta.is_dir() {
                stack.push(path);
            } else if !meta.is_file() {
                out.insert(name, b"<not a regular file>".to_vec());
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.insert(name, bytes);
            }
        }
    }
    out
}

fn strings(report: &serde_json::Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no list {key} in {report}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("{v}")).to_string())
        .collect();
    v.sort();
    v
}

// ---- A. names that come down obey the rules of names that go up --------------------------

/// Names another writer planted that a push from here would never upload: git's config
/// (core.fsmonitor runs a command), an ignore file of `*` (stops every later upload), a
/// hidden file, a built-in skip, a name the local `.devlogignore` excludes, and one the
/// include rules do not take.
const PLANTED: &[(&str, &[u8])] = &[
    (".git/config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n"),
    (".devlogignore", b"*\n"),
    ("a/.hidden.md", b"hidden\n"),
    ("target/t.md", b"built\n"),
    ("private/p.md", b"kept out by the local .devlogignore\n"),
    ("image.png", b"png\n"),
];

fn restore_writes_only_names_a_push_would_upload<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file(".devlogignore", "private/\n");
    env.write_file("notes.md", "mine\n");
    json(&env, &["push"], 0);
    for (name, bytes) in PLANTED {
        backend.put(name, bytes);
    }
    let mut planted: Vec<String> = PLANTED.iter().map(|(n, _)| n.to_string()).collect();
    planted.sort();

    // Into another directory: only the journal's file arrives.
    let out = env.root().join("out");
    let (report, _) = json(&env, &["restore", "--to", out.to_str().unwrap()], 0);
    assert_eq!(strings(&report, "skipped"), planted, "{report}");
    assert!(strings(&report, "failed").is_empty(), "{report}");
    let got: Vec<String> = tree(&out).into_keys().collect();
    assert_eq!(got, vec!["notes.md"], "{report}");

    // Into the journal itself: the local ignore file stays ours, nothing planted appears.
    std::fs::remove_file(env.journal().join("notes.md")).unwrap();
    let run = env.run(&["restore"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("skipped") && run.stdout.contains(".git/config"),
        "{}",
        run.stdout
    );
    let got: Vec<String> = tree(&env.journal()).into_keys().collect();
    assert_eq!(got, vec![".devlogignore", "notes.md"], "{}", run.stdout);
    assert_eq!(
        std::fs::read(env.journal().join(".devlogignore")).unwrap(),
        b"private/\n"
    );
}

// ---- C. a kept local copy: a name nobody can predict, its extension kept ---------------

fn overwrite_keeps_the_local_file_under_an_unpredictable_name_that_is_backed_up<B: Backend>() {
    let (env, _backend) = world::<B>();
    env.write_file("notes.md", "remote\n");
    json(&env, &["push"], 0);
    env.write_file("notes.md", "local\n");
    let (report, _) = json(&env, &["restore", "--overwrite"], 0);
    let kept = report["replaced_local"][0]["kept_as"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"))
        .to_string();
    // notes.local-20261203T101500Z-k3x9qa.md
    let middle = kept
        .strip_prefix("notes.local-")
        .and_then(|k| k.strip_suffix(".md"))
        .unwrap_or_else(|| panic!("{kept}"));
    let (stamp, random) = middle.split_once('-').unwrap_or_else(|| panic!("{kept}"));
    assert!(stamp.len() == 16 && stamp.ends_with('Z'), "{kept}");
    assert!(
        random.len() == 6
            && random
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{kept}"
    );
    assert_eq!(
        std::fs::read(env.journal().join(&kept)).unwrap(),
        b"local\n"
    );
    assert_eq!(
        std::fs::read(env.journal().join("notes.md")).unwrap(),
        b"remote\n"
    );
    // The kept copy is a name a push uploads.
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(report["uploaded"], 1, "{report}");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod azure {
            use super::*;
            $( #[test] fn $name() { super::$name::<AzureBackend>(); } )*
        }
        mod directory {
            use super::*;
            $( #[test] fn $name() { super::$name::<DirectoryBackend>(); } )*
        }
    };
}

suite!(
    restore_writes_only_names_a_push_would_upload,
    overwrite_keeps_the_local_file_under_an_unpredictable_name_that_is_backed_up,
);

// ---- the hostile endpoint -----------------------------------------------------------------

/// A journal whose remote is `url` (a hostile endpoint), with Azurite's SAS.
fn env_at(url: &str) -> TestEnv {
    let env = TestEnv::new().with_sas(Azurite::shared().account_sas());
    env.write_config(&format!("[remote]\nurl = \"{url}\"\n"));
    env
}

/// A listing entry for `bytes` with the MD5 given (`None`: listed without one).
fn listed(name: &str, bytes: &[u8], md5: Option<[u8; 16]>) -> ListedBlob {
    ListedBlob {
        md5,
        ..ListedBlob::of(name, bytes)
    }
}

/// A fake service listing `blobs` and answering each Get Blob with `get(name)`.
fn service(blobs: Vec<ListedBlob>, get: impl Fn(&str) -> Resp + Send + Sync + 'static) -> Hostile {
    Hostile::standalone(move |req: &Req| {
        if req.is_list() {
            Action::Reply(Resp::list(&blobs))
        } else if req.is_get_blob() {
            Action::Reply(get(&req.blob_name().unwrap_or_default()))
        } else {
            Action::Reply(Resp::error(404, "ContainerNotFound", "no"))
        }
    })
}

// ---- B. every byte checked against the listing --------------------------------------------

#[test]
fn a_download_that_differs_from_the_listing_is_never_placed() {
    let promised = b"four";
    let other = b"FOUR";
    let hostile = service(
        vec![
            listed("other-bytes.md", promised, Some(md5_of(promised))),
            // The GET answers other bytes with a Content-MD5 that matches them.
            listed("longer.md", promised, Some(md5_of(promised))),
            listed("no-md5-at-get.md", promised, Some(md5_of(promised))),
        ],
        move |name| match name {
            "other-bytes.md" => Resp::blob(other, Some(md5_of(other))),
            "longer.md" => Resp::blob(b"four and more", Some(md5_of(b"four and more"))),
            _ => Resp::blob(other, None),
        },
    );
    let env = env_at(&hostile.container_url("journal"));
    let out = env.root().join("out");
    let (report, _) = json(&env, &["restore", "--to", out.to_str().unwrap()], 1);
    let failed: Vec<String> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        failed,
        vec!["longer.md", "no-md5-at-get.md", "other-bytes.md"],
        "{report}"
    );
    assert!(tree(&out).is_empty(), "{:?}", tree(&out).keys());
}

#[test]
fn a_download_past_the_listed_size_stops_at_once() {
    const HUGE: usize = 64 << 20;
    let hostile = service(
        vec![listed("tiny.md", b"tiny", Some(md5_of(b"tiny")))],
        |_| Resp::blob(&vec![b'x'; HUGE], None),
    );
    let env = env_at(&hostile.container_url("journal"));
    let out = env.root().join("out");
    let (report, _) = json(&env, &["restore", "--to", out.to_str().unwrap()], 1);
    let error = report["failed"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("more than the 4 bytes"), "{report}");
    assert!(tree(&out).is_empty(), "{:?}", tree(&out).keys());
}

#[test]
fn a_blob_listed_without_an_md5_needs_allow_unverified() {
    let bytes = b"no md5 listed\n";
    let hostile = service(vec![listed("plain.md", bytes, None)], move |_| {
        Resp::blob(bytes, None)
    });
    let env = env_at(&hostile.container_url("journal"));
    let out = env.root().join("out");
    let (report, _) = json(&env, &["restore", "--to", out.to_str().unwrap()], 1);
    let error = report["failed"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("has no MD5 to verify it with"), "{report}");
    assert!(tree(&out).is_empty());
    let (report, _) = json(
        &env,
        &[
            "restore",
            "--allow-unverified",
            "--to",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(report["restored"], 1, "{report}");
    assert_eq!(std::fs::read(out.join("plain.md")).unwrap(), bytes);
}

#[test]
fn conflicts_fetch_checks_against_the_listing_and_skips_names_a_push_never_uploads() {
    let mine = b"mine\n";
    let theirs = b"theirs\n";
    let copy = "notes.conflict-other-20261203T100000Z.md";
    let bad_copy = "b.conflict-other-20261203T100000Z.md";
    let hidden_copy = ".git/h.conflict-other-20261203T100000Z.md";
    let hostile = service(
        vec![
            listed("notes.md", mine, Some(md5_of(mine))),
            listed(copy, theirs, Some(md5_of(theirs))),
            listed(bad_copy, theirs, Some(md5_of(theirs))),
            listed(hidden_copy, theirs, Some(md5_of(theirs))),
        ],
        move |name| match name {
            "b.conflict-other-20261203T100000Z.md" => Resp::blob(b"THEIRS\n", None),
            _ => Resp::blob(theirs, None),
        },
    );
    let env = env_at(&hostile.container_url("journal"));
    env.write_file("notes.md", mine);
    let (report, _) = json(&env, &["conflicts", "--fetch"], 1);
    assert_eq!(
        strings(&report, "skipped"),
        vec![hidden_copy.to_string()],
        "{report}"
    );
    assert_eq!(
        report["failed"][0]["path"],
        format!("{bad_copy}.theirs"),
        "{report}"
    );
    let got: Vec<String> = tree(&env.journal()).into_keys().collect();
    assert_eq!(got, vec![format!("{copy}.theirs"), "notes.md".to_string()]);
}

// ---- C. placing never replaces what appeared after the check ------------------------------

/// A proxy in front of Azurite that holds every Get Blob until `open` is set.
fn gated_proxy(az: &Azurite) -> (Hostile, Arc<AtomicBool>) {
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let hostile = Hostile::proxy(az.port(), move |req: &Req| {
        if req.is_get_blob() {
            // The fake service's own pace, not the test's synchronisation: the test
            // waits for the request to be seen, then opens the gate.
            while !gate.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Action::Forward
    });
    (hostile, open)
}

/// A journal on a fresh Azurite container holding `notes.md` = `remote`, restored through a
/// gated proxy.
fn gated_world(remote: &[u8]) -> (TestEnv, Hostile, Arc<AtomicBool>) {
    let (env, hostile, open, _) = gated_world_in(remote);
    (env, hostile, open)
}

/// [`gated_world`], also naming the container.
fn gated_world_in(remote: &[u8]) -> (TestEnv, Hostile, Arc<AtomicBool>, String) {
    let az = Azurite::shared();
    let container = unique_container("gated");
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    env.write_file("notes.md", remote);
    json(&env, &["push"], 0);
    let (hostile, open) = gated_proxy(az);
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        hostile.container_url(&container)
    ));
    (env, hostile, open, container)
}

fn spawn_restore(env: &TestEnv, args: &[&str]) -> std::process::Child {
    env.devlogd()
        .arg("restore")
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_get(hostile: &Hostile, name: &str) {
    wait_for(Duration::from_secs(30), "the Get Blob", || {
        hostile
            .requests()
            .iter()
            .any(|r| r.is_get_blob() && r.blob_name().as_deref() == Some(name))
            .then_some(())
    });
}

fn finish(child: std::process::Child) -> (Option<i32>, serde_json::Value, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code(), report, stderr)
}

#[test]
fn a_file_the_user_creates_while_restore_downloads_it_survives() {
    let (env, hostile, open) = gated_world(b"remote version\n");
    std::fs::remove_file(env.journal().join("notes.md")).unwrap();
    let child = spawn_restore(&env, &[]);
    wait_for_get(&hostile, "notes.md");
    env.write_file("notes.md", "the user's new words\n");
    open.store(true, Ordering::SeqCst);
    let (code, report, stderr) = finish(child);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(
        std::fs::read(env.journal().join("notes.md")).unwrap(),
        b"the user's new words\n"
    );
    assert_eq!(strings(&report, "kept_local"), vec!["notes.md"], "{report}");
    let names: Vec<String> = tree(&env.journal()).into_keys().collect();
    assert_eq!(names, vec!["notes.md"], "no temporary file left");
}

#[test]
fn under_overwrite_a_write_during_the_download_survives() {
    let (env, hostile, open) = gated_world(b"remote version\n");
    env.write_file("notes.md", "local version\n");
    let child = spawn_restore(&env, &["--overwrite"]);
    wait_for_get(&hostile, "notes.md");
    env.write_file("notes.md", "the user's new words\n");
    open.store(true, Ordering::SeqCst);
    let (code, report, stderr) = finish(child);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(
        std::fs::read(env.journal().join("notes.md")).unwrap(),
        b"the user's new words\n"
    );
    assert_eq!(strings(&report, "kept_local"), vec!["notes.md"], "{report}");
    let names: Vec<String> = tree(&env.journal()).into_keys().collect();
    assert_eq!(names, vec!["notes.md"], "{report}");
}

// ---- D. a paused daemon is a lease -------------------------------------------------------

fn state(env: &TestEnv) -> String {
    status_as(env, None)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn temp_files(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .filter(|n| n.contains(".devlogd-restore-") || n.contains(".devlogd-fetch-"))
        .collect()
}

/// The daemon runs on a journal holding `notes.md`; another writer added `other.md`; a
/// restore is stuck downloading it (the gate is closed) with the daemon paused.
fn restore_stuck_with_daemon() -> (
    TestEnv,
    Hostile,
    Arc<AtomicBool>,
    Daemon,
    std::process::Child,
) {
    let (env, hostile, open, container) = gated_world_in(b"remote version\n");
    Azurite::shared().put_blob(&container, "other.md", b"from another machine\n");
    let daemon = Daemon::start(&env);
    wait_for(Duration::from_secs(30), "an idle daemon", || {
        settled_as(&env, None).then_some(())
    });
    let child = spawn_restore(&env, &[]);
    wait_for_get(&hostile, "other.md");
    wait_for(Duration::from_secs(10), "a paused daemon", || {
        (state(&env) == "paused").then_some(())
    });
    (env, hostile, open, daemon, child)
}

#[test]
fn a_restore_killed_with_sigkill_leaves_the_daemon_running_and_its_temp_file_is_swept() {
    let (env, _hostile, open, _daemon, mut child) = restore_stuck_with_daemon();
    assert_eq!(temp_files(&env.journal()).len(), 1, "a download under way");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(Duration::from_secs(5), "the daemon resumed", || {
        (state(&env) != "paused").then_some(())
    });
    open.store(true, Ordering::SeqCst);
    let (report, _) = json(&env, &["restore"], 0);
    assert_eq!(report["restored"], 1, "{report}");
    assert!(
        temp_files(&env.journal()).is_empty(),
        "{:?}",
        tree(&env.journal()).keys()
    );
    assert_eq!(
        std::fs::read(env.journal().join("other.md")).unwrap(),
        b"from another machine\n"
    );
}

fn a_signalled_restore_exits_as_interrupted_and_resumes_the_daemon(signal: &str) {
    let (env, _hostile, _open, _daemon, child) = restore_stuck_with_daemon();
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args([&format!("-{signal}"), pid.as_str()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted"), "{text}");
    // The restore ends its lease before it exits; the worker takes the resume in turn.
    wait_for(Duration::from_secs(5), "the daemon resumed", || {
        (state(&env) != "paused").then_some(())
    });
    assert!(temp_files(&env.journal()).is_empty());
}

#[test]
fn sigterm_stops_a_restore_like_ctrl_c() {
    a_signalled_restore_exits_as_interrupted_and_resumes_the_daemon("TERM");
}

#[test]
fn sighup_stops_a_restore_like_ctrl_c() {
    a_signalled_restore_exits_as_interrupted_and_resumes_the_daemon("HUP");
}

// ---- E. restore stops on an unreachable remote -------------------------------------------

#[test]
fn restore_stops_at_the_first_unreachable_download_and_a_second_run_completes() {
    let data = tempfile::tempdir().unwrap();
    let mut az = Azurite::start_persistent(data.path(), None);
    let container = unique_container("unreachable");
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    let mut want = BTreeMap::new();
    for i in 0..400 {
        let bytes = format!("# entry {i}\n{}\n", "x".repeat(64 * 1024)).into_bytes();
        env.write_file(&format!("e/{i:03}.md"), &bytes);
        want.insert(format!("e/{i:03}.md"), bytes);
    }
    json(&env, &["push"], 0);
    let fresh = TestEnv::new().with_sas(az.account_sas());
    fresh.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    let mut child = fresh
        .devlogd()
        .arg("restore")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Azurite goes away once the restore has placed its first file.
    wait_for(Duration::from_secs(60), "a first file restored", || {
        tree(&fresh.journal())
            .keys()
            .any(|n| n.ends_with(".md"))
            .then_some(())
    });
    az.stop();
    let stopped = std::time::Instant::now();
    let status = poll_until(Duration::from_secs(30), || child.try_wait().unwrap());
    let elapsed = stopped.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("cannot reach") && lines[0].contains("nothing more was tried"),
        "{stderr}"
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let placed = tree(&fresh.journal());
    assert!(placed.len() < want.len(), "stopped early");
    for (name, bytes) in &placed {
        assert_eq!(
            Some(bytes),
            want.get(name),
            "{name}: only whole files are placed"
        );
    }
    az.restart();
    let (report, _) = json(&fresh, &["restore"], 0);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(tree(&fresh.journal()), want);
}

#[test]
fn the_daemons_full_pass_sweeps_a_dead_restores_temp_file() {
    let (env, _backend) = world::<DirectoryBackend>();
    env.write_file("notes.md", "mine\n");
    let stale = env.write_file("a/.devlogd-restore-00c0ffee00c0ffee", "partial download");
    let fetch = env.write_file(".devlogd-fetch-00c0ffee00c0ffee", "partial fetch");
    let _daemon = Daemon::start(&env);
    wait_for(
        Duration::from_secs(20),
        "the stale temp files swept",
        || (!stale.exists() && !fetch.exists()).then_some(()),
    );
    assert!(env.journal().join("notes.md").exists());
}

// ---- F. --to and --at ---------------------------------------------------------------------

#[test]
fn restore_to_refuses_another_users_directory_and_a_symlink_at_its_top() {
    let (env, _backend) = world::<DirectoryBackend>();
    env.write_file("notes.md", "mine\n");
    json(&env, &["push"], 0);
    let theirs = env.root().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = env.run(&["restore", "--to", theirs.to_str().unwrap()]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("owned by another user"),
        "{}",
        out.stderr
    );
    assert!(tree(&theirs).is_empty(), "{:?}", tree(&theirs).keys());

    let real = env.root().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = env.root().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = env.run(&["restore", "--to", link.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert!(tree(&real).is_empty(), "{:?}", tree(&real).keys());
}

#[test]
fn a_bare_at_date_is_the_end_of_that_day_in_the_local_time_zone() {
    let (env, _backend) = world::<DirectoryBackend>();
    env.write_file("notes.md", "written now\n");
    json(&env, &["push"], 0);
    // A zone and a date whose local end of day falls on the other side of now from the end
    // of the same date in UTC (POSIX TZ strings: no tzdata needed).
    let now = time::OffsetDateTime::now_utc();
    let date = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    let (tz, day, restored) = if now.hour() < 12 {
        // UTC-12: yesterday's local end is today 12:00 UTC, after now (UTC: before now).
        ("XYZ+12", date(now.date().previous_day().unwrap()), true)
    } else {
        // UTC+14: today's local end is today 10:00 UTC, before now (UTC: after now).
        ("XYZ-14", date(now.date()), false)
    };
    let out_dir = env.root().join("out");
    let out = env
        .devlogd()
        .env("TZ", tz)
        .args([
            "restore",
            "--at",
            &day,
            "--json",
            "--to",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A time before the first backup restores nothing and says so (exit 2).
    let code = if restored { 0 } else { 2 };
    assert_eq!(out.status.code(), Some(code), "{stdout}");
    if !restored {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("nothing was backed up"), "{stderr}");
    }
    assert_eq!(
        out_dir.join("notes.md").exists(),
        restored,
        "TZ={tz} --at {day}: {stdout}"
    );
}
