//! Issue 22, bullet 8: a blob damaged at rest on the directory remote (its bytes no longer
//! match the MD5 in its writer mark) is repaired from the local file by `push --all` and by
//! the daemon's full passes, with the damaged copy kept in history and never a conflict;
//! until it is repaired, `ctl status` says so. Each test drives the real `devlogd` binary.
//! Directory remote only: it is the remote whose bytes can change at rest under devlogd's
//! writer mark (Azure checks its own storage and never reports `corrupt`).

use crate::common;

use common::daemon::{running, settled, status, verdict};
use common::{RunOutput, TestEnv, poll_until, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

const HISTORY: &str = ".devlog-history";
const SETTLE: Duration = Duration::from_secs(90);

/// A journal backed up to a configured directory remote, with `sync` settings.
fn world(sync: &str) -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    let dir = env.root().join("remote");
    std::fs::create_dir_all(&dir).unwrap();
    env.write_config(&format!(
        "[remote]\nurl = \"file://{}\"\n\n[sync]\n{sync}",
        dir.display()
    ));
    (env, dir)
}

fn json(env: &TestEnv, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out: RunOutput = env.run(&all);
    out.assert_code(code);
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

/// Bit rot: one byte changes in place (same inode, extended attributes and mtime).
/// Returns the damaged bytes.
fn flip_a_byte(stored: &Path) -> Vec<u8> {
    let mtime = std::fs::metadata(stored).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(stored).unwrap();
    bytes[0] ^= 0x20;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(stored)
        .unwrap();
    std::io::Write::write_all(&mut file, &bytes).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    bytes
}

/// Every file under `dir` (relative names), devlogd's own working files left out.
fn names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if rel.starts_with(".devlogd") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// The contents of the history copies of `rel`.
fn history_of(dir: &Path, rel: &str) -> Vec<Vec<u8>> {
    let under = format!("{HISTORY}/{rel}/");
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(&under))
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect()
}

#[test]
fn push_all_repairs_a_flipped_byte_from_the_local_file() {
    let (env, dir) = world("");
    env.write_file("a.md", "hello world\n");
    env.write_file("b.md", "untouched\n");
    json(&env, &["push"], 0);
    let damaged = flip_a_byte(&dir.join("a.md"));

    // A dry run says what it found and what it would do, and changes nothing.
    let report = json(&env, &["push", "--all", "--dry-run"], 0);
    assert_eq!(report["corrupt"], serde_json::json!(["a.md"]), "{report}");
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["would_upload"][0]["reason"], "repair-corrupt",
        "{report}"
    );
    assert_eq!(std::fs::read(dir.join("a.md")).unwrap(), damaged);
    let text = env.run(&["push", "--all", "--dry-run"]);
    assert!(text.stdout.contains("corrupt     a.md"), "{}", text.stdout);

    let report = json(&env, &["push", "--all"], 0);
    assert_eq!(
        report["repaired_corrupt"],
        serde_json::json!(["a.md"]),
        "{report}"
    );
    assert_eq!(report["corrupt"], serde_json::json!([]), "{report}");
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    assert_eq!(report["uploaded"], 1, "{report}");
    assert_eq!(std::fs::read(dir.join("a.md")).unwrap(), b"hello world\n");
    assert_eq!(std::fs::read(dir.join("b.md")).unwrap(), b"untouched\n");
    assert!(
        names(&dir).iter().all(|n| !n.contains("conflict")),
        "{:?}",
        names(&dir)
    );
    // The damaged copy went to history before it was replaced.
    assert_eq!(history_of(&dir, "a.md"), vec![damaged]);
    json(&env, &["verify"], 0);
    // Nothing left to repair.
    let report = json(&env, &["push", "--all"], 0);
    assert_eq!(report["uploaded"], 0, "{report}");
    assert_eq!(
        report["repaired_corrupt"],
        serde_json::json!([]),
        "{report}"
    );

    // The human summary says what was done.
    flip_a_byte(&dir.join("b.md"));
    let out = env.run(&["push", "--all"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("repaired    b.md"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(std::fs::read(dir.join("b.md")).unwrap(), b"untouched\n");
}

#[test]
fn the_daemon_reports_a_damaged_blob_it_cannot_repair_until_it_is_repaired() {
    let (env, dir) = world("deletes = \"keep\"\n");
    env.write_file("a.md", "hello world\n");
    env.write_file("b.md", "bravo\n");
    let daemon = running(&env, SETTLE);
    wait_for(SETTLE, "a.md on the remote", || {
        dir.join("a.md").exists().then_some(())
    });
    flip_a_byte(&dir.join("a.md"));
    // The local file is gone too: nothing to repair it from.
    std::fs::remove_file(env.journal().join("a.md")).unwrap();
    wait_for(SETTLE, "the delete seen", || settled(&env).then_some(()));
    env.run(&["ctl", "push", "--all"]).assert_code(0);
    let s = poll_until(SETTLE, || {
        let s = status(&env);
        (s["corrupt"].as_u64() == Some(1) && settled(&env)).then_some(s)
    })
    .unwrap_or_else(|| panic!("not reported: {}\n{}", status(&env), daemon.log_text()));
    assert_eq!(s["corrupt_sample"], serde_json::json!(["a.md"]), "{s}");
    assert_eq!(s.verdict.state, "corrupt", "{s}");
    assert!(!s.verdict.safe, "{s}");
    let text = verdict(&s);
    assert!(!text.starts_with("All"), "{text}");
    assert!(
        text.contains("1 file damaged on the remote (first: a.md)")
            && text.contains("devlogd ctl push --all"),
        "{text}"
    );
    let human = env.run(&["ctl", "status"]);
    assert!(
        human.stdout.contains("damaged on the remote") && human.stdout.contains("a.md"),
        "{}",
        human.stdout
    );
    assert_eq!(s["conflicts"].as_u64(), Some(0), "{s}");

    // The file comes back (restored from elsewhere): the next full push repairs the blob.
    env.write_file("a.md", "hello world\n");
    wait_for(SETTLE, "the write seen", || settled(&env).then_some(()));
    env.run(&["ctl", "push", "--all"]).assert_code(0);
    let s = poll_until(SETTLE, || {
        let s = status(&env);
        (s["corrupt"].as_u64() == Some(0) && settled(&env)).then_some(s)
    })
    .unwrap_or_else(|| panic!("still reported: {}\n{}", status(&env), daemon.log_text()));
    assert!(verdict(&s).starts_with("All"), "{s}");
    assert_eq!(std::fs::read(dir.join("a.md")).unwrap(), b"hello world\n");
    assert!(names(&dir).iter().all(|n| !n.contains("conflict")));
}

#[test]
fn the_daemons_periodic_pass_repairs_a_damaged_blob() {
    let (env, dir) = world("rescan_interval_s = 10\n");
    env.write_file("a.md", "hello world\n");
    let daemon = running(&env, SETTLE);
    wait_for(SETTLE, "a.md on the remote", || {
        dir.join("a.md").exists().then_some(())
    });
    let damaged = flip_a_byte(&dir.join("a.md"));
    let repaired = poll_until(SETTLE, || {
        let bytes = std::fs::read(dir.join("a.md")).ok()?;
        (bytes == b"hello world\n").then_some(())
    });
    assert!(
        repaired.is_some(),
        "not repaired: {}\n{}",
        status(&env),
        daemon.log_text()
    );
    assert_eq!(history_of(&dir, "a.md"), vec![damaged]);
    assert!(
        names(&dir).iter().all(|n| !n.contains("conflict")),
        "{:?}",
        names(&dir)
    );
    let s = poll_until(SETTLE, || {
        let s = status(&env);
        settled(&env).then_some(s)
    })
    .unwrap();
    assert_eq!(s["corrupt"].as_u64(), Some(0), "{s}");
    assert_eq!(s["conflicts"].as_u64(), Some(0), "{s}");
    assert!(verdict(&s).starts_with("All"), "{s}");
}

#[test]
fn a_dry_run_reports_the_damage_and_the_next_upload_of_the_file_clears_it() {
    let (env, dir) = world("");
    env.write_file("a.md", "hello world\n");
    let daemon = running(&env, SETTLE);
    wait_for(SETTLE, "a.md on the remote", || {
        dir.join("a.md").exists().then_some(())
    });
    let damaged = flip_a_byte(&dir.join("a.md"));
    // A dry run repairs nothing: what it found stays reported.
    env.run(&["ctl", "push", "--all", "--dry-run"])
        .assert_code(0);
    let s = poll_until(SETTLE, || {
        let s = status(&env);
        (s["corrupt"].as_u64() == Some(1) && settled(&env)).then_some(s)
    })
    .unwrap_or_else(|| panic!("not reported: {}\n{}", status(&env), daemon.log_text()));
    assert_eq!(s.verdict.state, "corrupt", "{s}");
    assert_eq!(std::fs::read(dir.join("a.md")).unwrap(), damaged);
    // The user's next edit is pushed over the damaged copy (kept in history): repaired.
    env.write_file("a.md", "hello again\n");
    let s = poll_until(SETTLE, || {
        let s = status(&env);
        (s["corrupt"].as_u64() == Some(0) && settled(&env)).then_some(s)
    })
    .unwrap_or_else(|| panic!("still reported: {}\n{}", status(&env), daemon.log_text()));
    assert!(verdict(&s).starts_with("All"), "{s}");
    assert_eq!(std::fs::read(dir.join("a.md")).unwrap(), b"hello again\n");
    assert_eq!(history_of(&dir, "a.md"), vec![damaged]);
    assert!(names(&dir).iter().all(|n| !n.contains("conflict")));
}
