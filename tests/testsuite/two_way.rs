//! Two daemons in two-way mode (`sync.mode = "two-way"`, a one-second pull interval), each
//! with its own HOME and machine id, on one Azurite prefix: entries made on A appear on B,
//! B's edit reaches A, A's deletes leave B, a path both edit keeps both versions on both
//! machines, and `ctl status` says when the last pull ran and what came down. Timings are
//! printed (`--nocapture`), never asserted beyond the deadline a user would give up at.

use crate::common;

use common::daemon::Daemon;
use common::status::settled as idle;
use common::{Azurite, TestEnv, tree, unique_container, wait_for};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn machine(az: &Azurite, container: &str) -> TestEnv {
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n\n[sync]\nmode = \"two-way\"\npull_interval_s = 1\ndebounce_ms = 100\n",
        az.container_url(container)
    ));
    env
}

fn has(env: &TestEnv, rel: &str, bytes: &[u8]) -> Option<()> {
    (std::fs::read(env.journal().join(rel)).ok()?.as_slice() == bytes).then_some(())
}

/// Both trees the same, and both daemons idle with nothing pending.
fn settled(a: &TestEnv, b: &TestEnv) -> BTreeMap<String, Vec<u8>> {
    all_settled(&[a, b])
}

/// Every machine's tree the same, and every daemon idle with nothing pending.
fn all_settled(envs: &[&TestEnv]) -> BTreeMap<String, Vec<u8>> {
    let wait = Duration::from_secs(60);
    let trees = || envs.iter().map(|e| tree(&e.journal())).collect::<Vec<_>>();
    common::poll_until(wait, || {
        let all = trees();
        (all.windows(2).all(|w| w[0] == w[1]) && envs.iter().all(|e| idle(e)))
            .then(|| all.into_iter().next().unwrap_or_default())
    })
    .unwrap_or_else(|| {
        // What still differs, and what each daemon says: the failure names its cause.
        let all = trees();
        let names: std::collections::BTreeSet<&String> =
            all.iter().flat_map(|t| t.keys()).collect();
        let differ: Vec<String> = names
            .into_iter()
            .filter(|k| all.windows(2).any(|w| w[0].get(*k) != w[1].get(*k)))
            .map(|k| {
                let sizes: Vec<_> = all.iter().map(|t| t.get(k).map(Vec::len)).collect();
                format!("{k} (bytes per machine: {sizes:?})")
            })
            .collect();
        let statuses: Vec<String> = envs
            .iter()
            .map(|e| common::status::status(e).to_string())
            .collect();
        panic!(
            "timed out after {wait:?} waiting for every tree the same and every daemon idle; \
             differing: {differ:?}\nstatus per machine:\n{}",
            statuses.join("\n")
        )
    })
}

#[test]
fn two_daemons_keep_both_journals_whole() {
    let az = Azurite::shared();
    let container = unique_container("two-way");
    let (a, b) = (machine(az, &container), machine(az, &container));
    let _da = Daemon::start_with(&a, &[("DEVLOGD_MACHINE_ID", "machine-a")]);
    let _db = Daemon::start_with(&b, &[("DEVLOGD_MACHINE_ID", "machine-b")]);

    // An entry made on A appears on B.
    let started = Instant::now();
    a.write_file("2026/12/03-a.md", "# made on A\n");
    wait_for(Duration::from_secs(30), "A's entry on B", || {
        has(&b, "2026/12/03-a.md", b"# made on A\n")
    });
    eprintln!("A → B: {:.2} s", started.elapsed().as_secs_f64());

    // B's edit reaches A.
    let started = Instant::now();
    b.write_file("2026/12/03-a.md", "# made on A, edited on B\n");
    wait_for(Duration::from_secs(30), "B's edit on A", || {
        has(&a, "2026/12/03-a.md", b"# made on A, edited on B\n")
    });
    eprintln!("B → A: {:.2} s", started.elapsed().as_secs_f64());

    // A's delete leaves B.
    a.write_file("scratch.md", "for a moment\n");
    wait_for(Duration::from_secs(30), "scratch on B", || {
        has(&b, "scratch.md", b"for a moment\n")
    });
    std::fs::remove_file(a.journal().join("scratch.md")).unwrap();
    wait_for(Duration::from_secs(30), "scratch gone from B", || {
        (!b.journal().join("scratch.md").exists()).then_some(())
    });
    let trees = settled(&a, &b);
    assert!(trees.contains_key("2026/12/03-a.md"), "{:?}", trees.keys());

    // B's status says when it last pulled and what came down.
    let out = b.run(&["ctl", "status"]);
    out.assert_code(0);
    assert!(out.stdout.contains("last pull      "), "{}", out.stdout);
    let (v, _) = common::json(&b, &["ctl", "status"], 0);
    assert_eq!(v["mode"], "two-way", "{v:#}");
    assert!(v["last_pull"]["at_unix"].as_i64().is_some(), "{v:#}");
}

#[test]
fn a_path_both_daemons_edit_keeps_every_version() {
    let az = Azurite::shared();
    let container = unique_container("two-way-both");
    let (a, b) = (machine(az, &container), machine(az, &container));
    let log = std::env::var("DEVLOGD_TEST_LOG").unwrap_or_else(|_| "info".into());
    let _da = Daemon::start_with(
        &a,
        &[("DEVLOGD_MACHINE_ID", "machine-a"), ("RUST_LOG", &log)],
    );
    let _db = Daemon::start_with(
        &b,
        &[("DEVLOGD_MACHINE_ID", "machine-b"), ("RUST_LOG", &log)],
    );
    a.write_file("notes.md", "v0\n");
    wait_for(Duration::from_secs(30), "notes on B", || {
        has(&b, "notes.md", b"v0\n")
    });

    let mut saved = Vec::new();
    for i in 0..5 {
        let (on_a, on_b) = (format!("A's save {i}\n"), format!("B's save {i}\n"));
        a.write_file("notes.md", &on_a);
        b.write_file("notes.md", &on_b);
        saved.push(on_a);
        saved.push(on_b);
        // The next round after both have pushed (or been told the other was first).
        let handled = common::poll_until(Duration::from_secs(30), || {
            (idle(&a) && idle(&b)).then_some(())
        });
        assert!(
            handled.is_some(),
            "round {i} never settled: A {}\nB {}\nA's log:\n{}\nB's log:\n{}",
            common::status::status(&a),
            common::status::status(&b),
            _da.log_text(),
            _db.log_text()
        );
    }
    let trees = settled(&a, &b);
    // Every save is at the path, in a conflict file, or in the history.
    let history: Vec<Vec<u8>> = az
        .list_blobs(&container)
        .into_iter()
        .filter(|blob| blob.name.starts_with("journal/.devlog-history/notes.md/"))
        .filter_map(|blob| az.get_blob(&container, &blob.name))
        .collect();
    for content in &saved {
        let bytes = content.as_bytes();
        let kept = trees.values().any(|v| v == bytes) || history.iter().any(|v| v == bytes);
        assert!(
            kept,
            "{content:?} is lost: trees {:?}, history {:?}\nA's log:\n{}\nB's log:\n{}",
            trees
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>(),
            az.list_blobs(&container)
                .iter()
                .map(|blob| format!(
                    "{}={}",
                    blob.name,
                    String::from_utf8_lossy(
                        &az.get_blob(&container, &blob.name).unwrap_or_default()
                    )
                ))
                .collect::<Vec<_>>(),
            _da.log_text(),
            _db.log_text()
        );
    }
    let conflict_files: Vec<&String> = trees
        .keys()
        .filter(|k| k.starts_with("notes.sync-conflict-"))
        .collect();
    eprintln!("conflict files after 5 rounds: {}", conflict_files.len());
    // Repeated conflicts on one path, found on either machine, settle in one file.
    assert_eq!(
        conflict_files.len(),
        1,
        "{:?}\nA's log:\n{}\nB's log:\n{}",
        trees.keys(),
        _da.log_text(),
        _db.log_text()
    );
    let file = conflict_files[0].clone();

    // Both machines say so: the file, its path, the host whose version it holds.
    let host = devlogd::names::safe_host(&devlogd::machine::hostname());
    for env in [&a, &b] {
        let v = wait_for(
            Duration::from_secs(30),
            "the conflict file in status",
            || {
                let (v, _) = common::json(env, &["ctl", "status"], 0);
                (v["conflict_files"].as_array().map(Vec::len) == Some(1)).then_some(v)
            },
        );
        assert_eq!(v["conflict_files"][0]["file"], file.as_str(), "{v:#}");
        assert_eq!(v["conflict_files"][0]["path"], "notes.md", "{v:#}");
        assert_eq!(v["conflict_files"][0]["host"], host.as_str(), "{v:#}");
        assert_eq!(v["verdict"]["state"], "conflicts", "{v:#}");
        let text = env.run(&["ctl", "status"]);
        assert!(
            text.stdout
                .contains(&format!("notes.md ← {file} ({host}'s version)")),
            "{}",
            text.stdout
        );
        let metrics = env.run(&["ctl", "status", "--prometheus"]);
        assert!(
            metrics.stdout.contains("devlogd_conflict_files 1\n")
                && metrics.stdout.contains("devlogd_last_pull_failed 0\n"),
            "{}",
            metrics.stdout
        );
    }

    // Settled in one command on A, with the daemons running: gone from both machines.
    let (v, _) = common::json(
        &a,
        &["conflicts", "--resolve", "notes.md", "--keep", "mine"],
        0,
    );
    assert_eq!(v["pushed_by"], "daemon", "{v:#}");
    let trees = wait_for(
        Duration::from_secs(30),
        "the conflict file gone everywhere",
        || {
            let trees = settled(&a, &b);
            (!trees.contains_key(&file)).then_some(trees)
        },
    );
    assert_eq!(trees.len(), 1, "{:?}", trees.keys());
    for env in [&a, &b] {
        wait_for(
            Duration::from_secs(30),
            "no conflict file in status",
            || {
                let (v, _) = common::json(env, &["ctl", "status"], 0);
                (v["conflict_files"].as_array().map(Vec::len) == Some(0)).then_some(())
            },
        );
    }
}

#[test]
fn a_machine_that_was_off_catches_up_without_conflicts() {
    let az = Azurite::shared();
    let container = unique_container("two-way-off");
    let (a, b) = (machine(az, &container), machine(az, &container));
    // B was in sync once, then stopped.
    a.write_file("kept.md", "kept\n");
    {
        let _da = Daemon::start_with(&a, &[("DEVLOGD_MACHINE_ID", "machine-a")]);
        wait_for(Duration::from_secs(30), "kept.md pushed", || {
            az.get_blob(&container, "journal/kept.md").map(|_| ())
        });
    }
    b.run(&["pull"]).assert_code(0);
    let _da = Daemon::start_with(&a, &[("DEVLOGD_MACHINE_ID", "machine-a")]);
    for i in 0..300 {
        a.write_file(
            &format!("2026/12/{:02}/e{i:03}.md", i % 28 + 1),
            format!("entry {i}\n"),
        );
    }
    wait_for(
        Duration::from_secs(120),
        "A's entries on the remote",
        || {
            let n = az
                .list_blobs(&container)
                .iter()
                .filter(|b| b.name.starts_with("journal/2026/"))
                .count();
            (n == 300).then_some(())
        },
    );
    for i in (0..300).step_by(10) {
        std::fs::remove_file(
            a.journal()
                .join(format!("2026/12/{:02}/e{i:03}.md", i % 28 + 1)),
        )
        .unwrap();
    }
    std::fs::remove_file(a.journal().join("kept.md")).unwrap();
    wait_for(Duration::from_secs(60), "A settled", || {
        idle(&a).then_some(())
    });

    let started = Instant::now();
    let _db = Daemon::start_with(&b, &[("DEVLOGD_MACHINE_ID", "machine-b")]);
    let trees = settled(&a, &b);
    eprintln!(
        "B caught up with 300 new, 31 deleted in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        trees.len(),
        270,
        "{:?}",
        trees.keys().take(5).collect::<Vec<_>>()
    );
    assert!(
        !trees.keys().any(|k| k.contains("conflict")),
        "conflict files"
    );
}

#[test]
fn three_daemons_converge_and_lose_nothing() {
    let az = Azurite::shared();
    let container = unique_container("two-way-three");
    let envs: Vec<TestEnv> = (0..3).map(|_| machine(az, &container)).collect();
    let _daemons: Vec<Daemon> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| Daemon::start_with(e, &[("DEVLOGD_MACHINE_ID", &format!("machine-{i}"))]))
        .collect();
    envs[0].write_file("shared.md", "v0\n");
    envs[0].write_file("doomed.md", "soon gone\n");
    for e in &envs[1..] {
        wait_for(
            Duration::from_secs(30),
            "the first files everywhere",
            || {
                (has(e, "shared.md", b"v0\n").is_some()
                    && has(e, "doomed.md", b"soon gone\n").is_some())
                .then_some(())
            },
        );
    }
    let started = Instant::now();
    let mut saved = Vec::new();
    for (i, e) in envs.iter().enumerate() {
        for n in 0..10 {
            e.write_file(
                &format!("m{i}/entry-{n}.md"),
                format!("machine {i} entry {n}\n"),
            );
        }
        let edit = format!("shared, edited on machine {i}\n");
        e.write_file("shared.md", &edit);
        saved.push(edit);
    }
    std::fs::remove_file(envs[0].journal().join("doomed.md")).unwrap();
    let trees = wait_for(
        Duration::from_secs(90),
        "three identical trees, all idle",
        || {
            let t: Vec<_> = envs.iter().map(|e| tree(&e.journal())).collect();
            let same = t.windows(2).all(|w| w[0] == w[1]);
            (same && envs.iter().all(idle)).then(|| t[0].clone())
        },
    );
    eprintln!(
        "three daemons converged in {:.2} s with {} files",
        started.elapsed().as_secs_f64(),
        trees.len()
    );
    assert!(
        !trees.contains_key("doomed.md"),
        "the delete did not reach everyone"
    );
    let conflict_files: Vec<&String> = trees
        .keys()
        .filter(|k| k.starts_with("shared.sync-conflict-"))
        .collect();
    assert!(conflict_files.len() <= 1, "{conflict_files:?}");
    for i in 0..3 {
        for n in 0..10 {
            let rel = format!("m{i}/entry-{n}.md");
            assert_eq!(
                trees.get(&rel).map(Vec::as_slice),
                Some(format!("machine {i} entry {n}\n").as_bytes()),
                "{rel}"
            );
        }
    }
    let history = az.history_contents(&container, "journal");
    for edit in &saved {
        let bytes = edit.as_bytes();
        assert!(
            trees.values().any(|v| v == bytes) || history.iter().any(|v| v == bytes),
            "{edit:?} is lost: {:?}",
            trees.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        !az.list_blobs(&container)
            .iter()
            .any(|b| b.name.contains(".conflict-")),
        "a backup-mode conflict copy in two-way mode"
    );
}

/// `devlog new` on machine `id` (its events log is `events/YYYYMMDD-<id>.jsonl`).
fn devlog_new(env: &TestEnv, machine: &str, text: &str) {
    let out = env
        .devlog()
        .env("DEVLOGD_MACHINE_ID", machine)
        .args(["new", "-m", text])
        .output()
        .expect("run devlog");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two daemons on a directory remote: each machine's activity log is taken as its writer has
/// it — appended on one machine while the other holds a stale (shortened) copy of it, it
/// never becomes a conflict file — and every entry made on either machine is on both.
#[test]
fn each_machines_events_log_is_taken_as_its_writer_has_it() {
    let shared = tempfile::tempdir().unwrap();
    let mirror = shared.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let config = format!(
        "[remote]\nurl = \"file://{}\"\n\n[sync]\nmode = \"two-way\"\npull_interval_s = 1\ndebounce_ms = 100\n",
        mirror.display()
    );
    let (a, b) = (TestEnv::new(), TestEnv::new());
    a.write_config(&config);
    b.write_config(&config);
    let _da = Daemon::start_with(&a, &[("DEVLOGD_MACHINE_ID", "machine-a")]);
    let _db = Daemon::start_with(&b, &[("DEVLOGD_MACHINE_ID", "machine-b")]);
    let log_of = |env: &TestEnv, machine: &str| -> Option<(String, Vec<u8>)> {
        let dir = env.journal().join("events");
        let tag = devlogd::journal::events::machine_tag_for(&devlogd::machine::hostname(), machine);
        let entry = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{tag}.jsonl"))
            })?;
        let name = format!("events/{}", entry.file_name().to_string_lossy());
        Some((name, std::fs::read(entry.path()).ok()?))
    };
    for i in 0..5 {
        devlog_new(&a, "machine-a", &format!("A's entry {i}"));
        devlog_new(&b, "machine-b", &format!("B's entry {i}"));
    }
    let trees = settled(&a, &b);
    let (a_log, a_lines) = log_of(&a, "machine-a").expect("A's events log");
    assert_eq!(trees.get(&a_log), Some(&a_lines));

    // B's copy of A's log goes stale (cut short) while A keeps appending: A's stands.
    let stale = &a_lines[..a_lines.len() / 2];
    std::fs::write(b.journal().join(&a_log), stale).unwrap();
    for i in 5..8 {
        devlog_new(&a, "machine-a", &format!("A's entry {i}"));
    }
    let trees = wait_for(Duration::from_secs(60), "A's full log on B", || {
        let trees = settled(&a, &b);
        let (_, now) = log_of(&a, "machine-a")?;
        (trees.get(&a_log) == Some(&now)).then_some(trees)
    });
    assert!(
        !trees.keys().any(|k| k.contains("conflict")),
        "an events log was conflicted: {:?}",
        trees.keys().collect::<Vec<_>>()
    );
    let lines = String::from_utf8(trees[&a_log].clone()).unwrap();
    assert_eq!(lines.lines().count(), 8, "{lines}");
    let entries = trees.keys().filter(|k| k.starts_with("entries/")).count();
    assert_eq!(entries, 13, "{:?}", trees.keys().collect::<Vec<_>>());
    // The change mark idle polls read is there, outside the journal's files.
    assert!(mirror.join(".devlog-history/.changed").is_file());
}

/// Three daemons (own HOME and machine id each) on one Azurite prefix. Each makes an entry a
/// round while all three save one shared file within moments of each other; after
/// quiescence the three trees are byte-identical, every entry is on every machine, every
/// save of the shared file is at its path, in its one conflict file, or in the history.
#[test]
fn three_daemons_converge_and_keep_every_save() {
    let az = Azurite::shared();
    let container = unique_container("three-way");
    let envs: Vec<TestEnv> = (0..3).map(|_| machine(az, &container)).collect();
    let _daemons: Vec<Daemon> = envs
        .iter()
        .zip(["machine-a", "machine-b", "machine-c"])
        .map(|(env, id)| Daemon::start_with(env, &[("DEVLOGD_MACHINE_ID", id)]))
        .collect();
    let all: Vec<&TestEnv> = envs.iter().collect();
    let mut saved = Vec::new();
    for round in 0..4 {
        for (i, env) in envs.iter().enumerate() {
            env.write_file(
                &format!("2026/12/{round:02}-{i}.md"),
                format!("# entry {round} from machine {i}\n"),
            );
            let save = format!("save {round} from machine {i}\n");
            env.write_file("shared.md", &save);
            saved.push(save);
        }
        let settled = common::poll_until(Duration::from_secs(30), || {
            all.iter().all(|e| idle(e)).then_some(())
        });
        assert!(settled.is_some(), "round {round} never settled");
    }
    let trees = all_settled(&all);
    let entries = trees.keys().filter(|k| k.starts_with("2026/12/")).count();
    assert_eq!(entries, 12, "{:?}", trees.keys());
    let history = az.history_contents(&container, "journal");
    for content in &saved {
        let bytes = content.as_bytes();
        assert!(
            trees.values().any(|v| v == bytes) || history.iter().any(|v| v == bytes),
            "{content:?} is lost: {:?}",
            trees.keys()
        );
    }
    let conflict_files: Vec<&String> = trees
        .keys()
        .filter(|k| k.starts_with("shared.sync-conflict-"))
        .collect();
    eprintln!("conflict files after 4 rounds on 3 machines: {conflict_files:?}");
    assert!(conflict_files.len() <= 1, "{:?}", trees.keys());
}
