//! Getting it back: `restore`, `history`, deletes that reach the remote (kept in history),
//! the mass-delete guard and retention. One suite, run against Azure Blob Storage
//! (Azurite) and the directory remote, driving the real `devlogd` binary (the pattern of
//! tests/testsuite/push_conformance.rs).

use crate::common;

use common::backend::{AzureBackend, Backend, DirectoryBackend, HISTORY, env_for, tree, world};
use common::daemon::{settled, status};
use common::{TestEnv, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn count(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

fn list(report: &serde_json::Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {report}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Files with awkward names: spaces, unicode, `#`, `%`, `?`, `+`, deep directories, an
/// empty file, and a file large enough to go in blocks.
fn awkward_journal(env: &TestEnv, n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let names = [
        "notes/a b.md",
        "notes/ünïcödé ✓.md",
        "notes/#hash%20pct?.md",
        "notes/plus+and&amp.md",
        "deep/1/2/3/4/5/6/7/8/entry.md",
        "events/20261122.jsonl",
        "config.toml",
        "empty.md",
    ];
    for (i, name) in names.iter().enumerate() {
        let bytes = if *name == "empty.md" {
            Vec::new()
        } else {
            format!("{name} {i}\n").into_bytes()
        };
        files.insert(name.to_string(), bytes);
    }
    for i in 0..n {
        files.insert(
            format!("entries/2026/{:02}/entry {i} — ü.md", i % 12 + 1),
            format!("# entry {i}\n{}\n", "x".repeat(i % 50)).into_bytes(),
        );
    }
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 3).map(|i| (i % 251) as u8).collect();
    files.insert("attachments/big.md".into(), big);
    for (rel, bytes) in &files {
        env.write_file(rel, bytes);
    }
    files
}

fn restore_into_a_fresh_home_is_byte_identical_and_the_next_push_uploads_nothing<B: Backend>() {
    let (env, backend) = world::<B>();
    let want = awkward_journal(&env, 300);
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(count(&report, "uploaded"), want.len() as u64);
    // A new laptop: a fresh HOME, the same remote, nothing local.
    let fresh = env_for(&backend, TestEnv::new(), "");
    let (report, _) = json(&fresh, &["restore"], 0);
    assert_eq!(count(&report, "restored"), want.len() as u64, "{report}");
    assert_eq!(tree(&fresh.journal()), want, "byte-identical tree");
    let (report, _) = json(&fresh, &["push"], 0);
    assert_eq!(count(&report, "uploaded"), 0, "{report}");
    assert_eq!(count(&report, "unchanged"), want.len() as u64, "{report}");
    // Restoring again changes nothing.
    let (report, _) = json(&fresh, &["restore"], 0);
    assert_eq!(count(&report, "restored"), 0);
    assert_eq!(count(&report, "unchanged"), want.len() as u64);
    // The original machine after losing its journal (and index).
    std::fs::remove_dir_all(env.journal()).unwrap();
    std::fs::remove_dir_all(env.state_home()).unwrap();
    let (report, _) = json(&env, &["restore"], 0);
    assert_eq!(count(&report, "restored"), want.len() as u64);
    assert_eq!(tree(&env.journal()), want);
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(count(&report, "uploaded"), 0, "{report}");
}

fn history_lists_every_version_and_restore_at_brings_each_back<B: Backend>() {
    let (env, backend) = world::<B>();
    let contents: [&[u8]; 4] = [b"one\n", b"one two\n", b"one two three\n", b""];
    let mut times = Vec::new();
    for bytes in contents {
        env.write_file("notes.md", bytes);
        let (report, _) = json(&env, &["push"], 0);
        assert_eq!(count(&report, "uploaded"), 1, "{report}");
        times.push(now_rfc3339());
    }
    let (history, _) = json(&env, &["history", "notes.md"], 0);
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 4, "{history}");
    let sizes: Vec<u64> = versions
        .iter()
        .map(|v| v["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![4, 8, 14, 0]);
    assert_eq!(versions[3]["current"], true);
    assert!(versions.iter().all(|v| v["md5"].is_string()));
    assert_eq!(
        backend
            .names()
            .iter()
            .filter(|n| n.starts_with(HISTORY))
            .count(),
        3
    );
    for (i, at) in times.iter().enumerate() {
        let to = env.root().join(format!("at-{i}"));
        let (report, _) = json(
            &env,
            &[
                "restore",
                "--at",
                at,
                "--to",
                to.to_str().unwrap(),
                "notes.md",
            ],
            0,
        );
        assert_eq!(count(&report, "restored"), 1, "{report}");
        assert_eq!(
            std::fs::read(to.join("notes.md")).unwrap(),
            contents[i],
            "version {i}"
        );
    }
    // `restore --at` into the journal brings an old version back; the next push makes it
    // current again (the emptied one goes to history).
    let (report, _) = json(
        &env,
        &["restore", "--at", &times[1], "--overwrite", "notes.md"],
        0,
    );
    assert_eq!(report["replaced_local"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(env.journal().join("notes.md")).unwrap(),
        contents[1]
    );
    // (The kept local copy, NAME.local-TIME-RANDOM.md, is uploaded too.)
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(count(&report, "uploaded"), 2, "{report}");
    let (history, _) = json(&env, &["history", "notes.md"], 0);
    assert_eq!(history["versions"].as_array().unwrap().len(), 5);
}

fn deleted_files_leave_the_current_view_and_come_back_with_at<B: Backend>() {
    let (env, backend) = world::<B>();
    for i in 0..5 {
        env.write_file(&format!("d/{i}.md"), format!("file {i}"));
    }
    json(&env, &["push"], 0);
    let before = now_rfc3339();
    for i in 0..3 {
        std::fs::remove_file(env.journal().join(format!("d/{i}.md"))).unwrap();
    }
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(list(&report, "deleted"), vec!["d/0.md", "d/1.md", "d/2.md"]);
    let current: Vec<String> = backend
        .names()
        .into_iter()
        .filter(|n| !n.starts_with(HISTORY))
        .collect();
    assert_eq!(current, vec!["d/3.md", "d/4.md"]);
    // A second push has nothing left to delete.
    let (report, _) = json(&env, &["push"], 0);
    assert!(list(&report, "deleted").is_empty());
    let fresh = env.root().join("fresh");
    json(&env, &["restore", "--to", fresh.to_str().unwrap()], 0);
    let names: Vec<String> = tree(&fresh).into_keys().collect();
    assert_eq!(
        names,
        vec!["d/3.md", "d/4.md"],
        "deleted files stay deleted"
    );
    let then = env.root().join("then");
    json(
        &env,
        &["restore", "--at", &before, "--to", then.to_str().unwrap()],
        0,
    );
    let got = tree(&then);
    assert_eq!(got.len(), 5, "{:?}", got.keys());
    assert_eq!(got["d/0.md"], b"file 0");
    // `push --all` and `verify` leave the history out of the current view.
    let (report, _) = json(&env, &["push", "--all"], 0);
    assert!(list(&report, "remote_only").is_empty(), "{report}");
    let out = env.run(&["verify"]);
    out.assert_code(0);
}

fn emptying_the_root_deletes_nothing_until_allowed<B: Backend>() {
    let (env, backend) = world::<B>();
    for i in 0..60 {
        env.write_file(&format!("e/{i}.md"), format!("entry {i}"));
    }
    json(&env, &["push"], 0);
    std::fs::remove_dir_all(env.journal().join("e")).unwrap();
    let (report, out) = json(&env, &["push"], 0);
    assert_eq!(list(&report, "held_deletes").len(), 60, "{report}");
    assert!(list(&report, "deleted").is_empty());
    let current = || {
        backend
            .names()
            .into_iter()
            .filter(|n| !n.starts_with(HISTORY))
            .count()
    };
    assert_eq!(current(), 60, "nothing removed remotely");
    let _ = out;
    let human = env.run(&["push"]);
    human.assert_code(0);
    assert!(human.stdout.contains("--allow-deletes"), "{}", human.stdout);
    let (report, _) = json(&env, &["push", "--allow-deletes"], 0);
    assert_eq!(list(&report, "deleted").len(), 60, "{report}");
    assert_eq!(current(), 0);
}

fn a_differing_local_file_is_never_overwritten_without_overwrite<B: Backend>() {
    let (env, _backend) = world::<B>();
    env.write_file("a.md", b"remote version");
    env.write_file("b.md", b"same");
    json(&env, &["push"], 0);
    env.write_file("a.md", b"local edit, not pushed");
    let (report, _) = json(&env, &["restore"], 0);
    assert_eq!(list(&report, "kept_local"), vec!["a.md"]);
    assert_eq!(count(&report, "unchanged"), 1);
    assert_eq!(
        std::fs::read(env.journal().join("a.md")).unwrap(),
        b"local edit, not pushed"
    );
    let (report, _) = json(&env, &["restore", "--dry-run", "--overwrite"], 0);
    assert_eq!(list(&report, "would_restore"), vec!["a.md"]);
    assert_eq!(
        std::fs::read(env.journal().join("a.md")).unwrap(),
        b"local edit, not pushed"
    );
    let (report, _) = json(&env, &["restore", "--overwrite"], 0);
    let kept_as = report["replaced_local"][0]["kept_as"].as_str().unwrap();
    assert!(
        kept_as.starts_with("a.local-") && kept_as.ends_with(".md"),
        "{report}"
    );
    assert_eq!(
        std::fs::read(env.journal().join("a.md")).unwrap(),
        b"remote version"
    );
    assert_eq!(
        std::fs::read(env.journal().join(kept_as)).unwrap(),
        b"local edit, not pushed"
    );
}

fn retention_prunes_only_history_older_than_the_limit<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file("a.md", b"one");
    json(&env, &["push"], 0);
    env.write_file("a.md", b"two");
    json(&env, &["push"], 0);
    // A version whose name says it was replaced long ago, stored now: ages are the
    // service's (issue 22), so it is as fresh as the real one and both stay.
    let old = format!("{HISTORY}/a.md/20200101T000000.000000000Z-old");
    backend.put(&old, b"ancient");
    let history = || -> Vec<String> {
        let mut h: Vec<String> = backend
            .names()
            .into_iter()
            .filter(|n| n.starts_with(HISTORY))
            .collect();
        h.sort();
        h
    };
    assert_eq!(history().len(), 2);
    let (report, _) = json(&env, &["prune"], 0);
    assert_eq!(count(&report, "removed"), 0, "{report}");
    assert_eq!(count(&report, "kept"), 2);
    let left = history();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&old));
    assert!(
        backend.names().contains(&"a.md".to_string()),
        "current kept"
    );
    let (report, _) = json(&env, &["prune"], 0);
    assert_eq!(count(&report, "removed"), 0);
}

macro_rules! suite {
    ($module:ident, $backend:ty) => {
        mod $module {
            use super::*;

            #[test]
            fn restore_into_a_fresh_home_is_byte_identical_and_the_next_push_uploads_nothing()
            {
                super::restore_into_a_fresh_home_is_byte_identical_and_the_next_push_uploads_nothing::<$backend>();
            }

            #[test]
            fn history_lists_every_version_and_restore_at_brings_each_back() {
                super::history_lists_every_version_and_restore_at_brings_each_back::<$backend>();
            }

            #[test]
            fn deleted_files_leave_the_current_view_and_come_back_with_at() {
                super::deleted_files_leave_the_current_view_and_come_back_with_at::<$backend>();
            }

            #[test]
            fn emptying_the_root_deletes_nothing_until_allowed() {
                super::emptying_the_root_deletes_nothing_until_allowed::<$backend>();
            }

            #[test]
            fn a_differing_local_file_is_never_overwritten_without_overwrite() {
                super::a_differing_local_file_is_never_overwritten_without_overwrite::<$backend>(
                );
            }

            #[test]
            fn retention_prunes_only_history_older_than_the_limit() {
                super::retention_prunes_only_history_older_than_the_limit::<$backend>();
            }
        }
    };
}

suite!(azure, AzureBackend);
suite!(directory, DirectoryBackend);

// --- with the daemon running (Azurite) -----------------------------------------------------

const SETTLE: std::time::Duration = std::time::Duration::from_secs(60);

#[test]
fn the_daemon_holds_a_mass_delete_says_why_and_releases_it_on_request() {
    let (env, backend) = world::<AzureBackend>();
    for i in 0..60 {
        env.write_file(&format!("e/{i}.md"), format!("entry {i}"));
    }
    env.write_file("keep.md", b"stays");
    json(&env, &["push"], 0);
    let daemon = common::daemon::Daemon::start(&env);
    common::wait_for(SETTLE, "the start-up pass", || settled(&env).then_some(()));
    std::fs::remove_dir_all(env.journal().join("e")).unwrap();
    let held = common::poll_until(SETTLE, || {
        (status(&env).held_deletes == 60 && settled(&env)).then_some(())
    });
    assert!(
        held.is_some(),
        "the deletes were not held: {}\nremote: {:?}\nlog: {}",
        status(&env),
        backend.names().len(),
        daemon.log_text()
    );
    let current = || {
        backend
            .names()
            .into_iter()
            .filter(|n| !n.starts_with(HISTORY))
            .count()
    };
    assert_eq!(current(), 61, "nothing removed remotely");
    let text = env.run(&["ctl", "status"]);
    assert!(
        text.stdout.contains("deletes HELD") && text.stdout.contains("--allow-deletes"),
        "{}",
        text.stdout
    );
    let (report, _) = json(&env, &["ctl", "push", "--allow-deletes"], 0);
    assert_eq!(list(&report, "deleted").len(), 60, "{report}");
    assert_eq!(current(), 1);
    assert_eq!(status(&env).held_deletes, 0);
}

#[test]
fn restore_with_the_daemon_running_goes_through_it_and_uploads_nothing() {
    let (env, backend) = world::<AzureBackend>();
    let want = awkward_journal(&env, 20);
    json(&env, &["push"], 0);
    let fresh = env_for(&backend, TestEnv::new(), "");
    let _daemon = common::daemon::Daemon::start(&fresh);
    common::wait_for(SETTLE, "the start-up pass", || {
        settled(&fresh).then_some(())
    });
    let (report, out) = json(&fresh, &["restore"], 0);
    assert!(out.stderr.contains("devlogd is running"), "{}", out.stderr);
    assert_eq!(count(&report, "restored"), want.len() as u64);
    assert_eq!(tree(&fresh.journal()), want);
    common::wait_for(SETTLE, "the daemon to record the files", || {
        let s = status(&fresh);
        (settled(&fresh) && s["files_in_index"].as_u64() == Some(want.len() as u64)).then_some(s)
    });
    assert_eq!(status(&fresh)["files_uploaded"].as_u64(), Some(0));
    let (report, _) = json(&fresh, &["push"], 0);
    assert_eq!(count(&report, "uploaded"), 0);
}

#[test]
fn the_daemon_prunes_old_history_after_its_first_full_pass() {
    let (env, backend) = world::<AzureBackend>();
    env.write_file("a.md", b"one");
    json(&env, &["push"], 0);
    env.write_file("a.md", b"two");
    json(&env, &["push"], 0);
    // Named as replaced long ago, stored now: its age is the service's (issue 22).
    let old = format!("{HISTORY}/a.md/20200101T000000.000000000Z-old");
    backend.put(&old, b"ancient");
    let _daemon = common::daemon::Daemon::start(&env);
    common::wait_for(SETTLE, "the daemon's daily prune", || {
        find_file(&env.state_home(), "last-prune")
    });
    let history: Vec<String> = backend
        .names()
        .into_iter()
        .filter(|n| n.starts_with(HISTORY))
        .collect();
    assert_eq!(history.len(), 2, "recent versions stay: {history:?}");
    assert!(backend.names().contains(&"a.md".to_string()));
}

/// The first file called `name` below `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                return Some(path);
            }
        }
    }
    None
}
