//! `devlogd pull`, two-way sync's pull pass, with two machines (own HOME and machine id) on
//! one Azurite prefix, driven as a user would: A's entries, edits and deletes reach B; a file
//! both changed keeps both versions on both machines (the remote's beside the local one as
//! a sync-conflict file); what B pulled is never pushed back; names a push would never
//! upload never come down. Blobs are read back with the harness's own client.

use crate::common;

use common::{Azurite, TestEnv, json, md5_b64, tree, unique_container};

fn machine(az: &Azurite, container: &str) -> TestEnv {
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n",
        az.container_url(container)
    ));
    env
}

fn two_way(az: &Azurite, container: &str) -> TestEnv {
    let env = machine(az, container);
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n\n[sync]\nmode = \"two-way\"\n",
        az.container_url(container)
    ));
    env
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn another_machines_entries_edits_and_deletes_come_down_and_are_not_pushed_back() {
    let az = Azurite::shared();
    let container = unique_container("pull");
    let a = machine(az, &container);
    let b = machine(az, &container);
    a.write_file("2026/12/01-first.md", "# first\n");
    a.write_file("2026/12/02-second.md", "# second\n");
    a.write_file("ideas.toml", "x = 1\n");
    a.run(&["push"]).assert_code(0);

    let (report, _) = json(&b, &["pull", "--dry-run"], 0);
    assert_eq!(
        strings(&report["downloaded"]),
        ["2026/12/01-first.md", "2026/12/02-second.md", "ideas.toml"],
        "{report:#}"
    );
    assert!(!b.journal().join("ideas.toml").exists(), "a dry run wrote");

    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(strings(&report["downloaded"]).len(), 3, "{report:#}");
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    // What came down is known to B's index: its push uploads nothing.
    let (pushed, _) = json(&b, &["push", "--all"], 0);
    assert_eq!(pushed["uploaded"], 0, "{pushed:#}");

    // A edits one entry and deletes another; B follows.
    a.write_file("2026/12/01-first.md", "# first, edited on A\n");
    std::fs::remove_file(a.journal().join("2026/12/02-second.md")).unwrap();
    let (pushed, _) = json(&a, &["push"], 0);
    assert_eq!(
        strings(&pushed["deleted"]),
        ["2026/12/02-second.md"],
        "{pushed:#}"
    );
    let out = b.run(&["pull"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(": 1 downloaded (") && out.stdout.contains("1 deleted, 0 conflicts"),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read(b.journal().join("2026/12/01-first.md")).unwrap(),
        b"# first, edited on A\n"
    );
    assert!(!b.journal().join("2026/12/02-second.md").exists());
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    // The remote holds A's edit, byte for byte, and nothing B pushed back.
    let (pushed, _) = json(&b, &["push", "--all"], 0);
    assert_eq!(pushed["uploaded"], 0, "{pushed:#}");
    let blobs = az.list_blobs(&container);
    let first = blobs
        .iter()
        .find(|b| b.name == "journal/2026/12/01-first.md")
        .expect("the edited entry is on the remote");
    assert_eq!(
        first.content_md5_b64.as_deref(),
        Some(md5_b64(b"# first, edited on A\n").as_str())
    );
    assert!(
        !blobs
            .iter()
            .any(|b| b.name == "journal/2026/12/02-second.md")
    );

    // Nothing new: a second pull changes nothing.
    let (again, _) = json(&b, &["pull"], 0);
    assert_eq!(strings(&again["downloaded"]).len(), 0, "{again:#}");
    assert_eq!(strings(&again["deleted"]).len(), 0, "{again:#}");
    assert_eq!(again["to_push"], 0, "{again:#}");
}

#[test]
fn a_file_changed_on_both_machines_keeps_both_versions_on_both() {
    let az = Azurite::shared();
    let container = unique_container("pull-conflict");
    let a = machine(az, &container);
    let b = machine(az, &container);
    a.write_file("notes.md", "v1\n");
    a.run(&["push"]).assert_code(0);
    json(&b, &["pull"], 0);

    a.write_file("notes.md", "A's edit\n");
    a.run(&["push"]).assert_code(0);
    b.write_file("notes.md", "B's edit\n");
    let (report, _) = json(&b, &["pull"], 0);
    let conflicts = report["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{report:#}");
    assert_eq!(conflicts[0]["path"], "notes.md", "{report:#}");
    let file = conflicts[0]["conflict_file"].as_str().unwrap().to_string();
    assert!(
        file.starts_with("notes.sync-conflict-") && file.ends_with(".md"),
        "{file}"
    );
    // Named for people: the host that wrote the other version, as it named itself.
    let host = devlogd::names::safe_host(&devlogd::machine::hostname());
    assert!(
        file.ends_with(&format!("-{host}.md")),
        "{file} does not name {host}"
    );
    // B's words stay where B wrote them; A's are beside them.
    assert_eq!(
        std::fs::read(b.journal().join("notes.md")).unwrap(),
        b"B's edit\n"
    );
    assert_eq!(
        std::fs::read(b.journal().join(&file)).unwrap(),
        b"A's edit\n"
    );
    // Both go up with the next push: B's file over the path, the conflict file beside it.
    assert_eq!(report["to_push"], 2, "{report:#}");

    // B's push puts its version at the path (A's goes to history) and the conflict file up.
    let (pushed, _) = json(&b, &["push"], 0);
    assert_eq!(
        pushed["conflicts"].as_array().unwrap().len(),
        0,
        "{pushed:#}"
    );
    assert_eq!(
        az.get_blob(&container, "journal/notes.md").as_deref(),
        Some(&b"B's edit\n"[..])
    );
    assert_eq!(
        az.get_blob(&container, &format!("journal/{file}"))
            .as_deref(),
        Some(&b"A's edit\n"[..])
    );

    // A follows: the same two files, byte for byte; nobody has anything left to do.
    let (report, _) = json(&a, &["pull"], 0);
    assert_eq!(
        report["conflicts"].as_array().unwrap().len(),
        0,
        "{report:#}"
    );
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    for env in [&a, &b] {
        let (again, _) = json(env, &["pull"], 0);
        assert_eq!(strings(&again["downloaded"]).len(), 0, "{again:#}");
        assert_eq!(again["to_push"], 0, "{again:#}");
    }

    // Settled on A (the conflict file deleted there): settled on B too.
    std::fs::remove_file(a.journal().join(&file)).unwrap();
    let (pushed, _) = json(&a, &["push"], 0);
    assert_eq!(strings(&pushed["deleted"]), [file.as_str()], "{pushed:#}");
    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(strings(&report["deleted"]), [file.as_str()], "{report:#}");
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    assert_eq!(tree(&b.journal()).len(), 1);
}

#[test]
fn names_a_push_would_never_upload_never_come_down() {
    let az = Azurite::shared();
    let container = unique_container("pull-hostile");
    let a = machine(az, &container);
    let b = machine(az, &container);
    a.write_file("notes.md", "mine\n");
    a.run(&["push"]).assert_code(0);
    // A co-writer on the remote plants what would run or hide things on B.
    for name in [
        ".git/config",
        "notes/.hidden.md",
        ".devlogignore",
        "\u{200c}.git/hooks/x",
    ] {
        az.put_blob(
            &container,
            &format!("journal/{name}"),
            b"[core]\n\tfsmonitor = evil\n",
        );
    }
    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(strings(&report["downloaded"]), ["notes.md"], "{report:#}");
    let skipped = strings(&report["skipped"]);
    assert!(skipped.contains(&".git/config".to_string()), "{report:#}");
    assert!(skipped.contains(&".devlogignore".to_string()), "{report:#}");
    assert_eq!(
        tree(&b.journal()).keys().cloned().collect::<Vec<_>>(),
        ["notes.md"]
    );
}

#[test]
fn the_directory_remote_carries_entries_and_deletes_between_machines() {
    let shared = tempfile::tempdir().unwrap();
    let mirror = shared.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let config = format!("[remote]\nurl = \"file://{}\"\n", mirror.display());
    let (a, b) = (TestEnv::new(), TestEnv::new());
    a.write_config(&config);
    b.write_config(&config);
    a.write_file("2026/12/03-entry.md", "# entry\n");
    a.write_file("old.md", "old\n");
    a.run(&["push"]).assert_code(0);
    json(&b, &["pull"], 0);
    assert_eq!(tree(&a.journal()), tree(&b.journal()));

    std::fs::remove_file(a.journal().join("old.md")).unwrap();
    a.write_file("2026/12/03-entry.md", "# entry, longer now\n");
    a.run(&["push"]).assert_code(0);
    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(strings(&report["deleted"]), ["old.md"], "{report:#}");
    assert_eq!(
        strings(&report["downloaded"]),
        ["2026/12/03-entry.md"],
        "{report:#}"
    );
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
}

/// A pushes `n` small entries (one command, so the files reach Azurite fast).
fn many(a: &TestEnv, n: usize) {
    for i in 0..n {
        a.write_file(&format!("d{}/e{i:04}.md", i % 10), format!("entry {i}\n"));
    }
    a.run(&["push"]).assert_code(0);
}

/// What is in B's journal under final names is A's, byte for byte (nothing half-written);
/// how many files that is.
fn only_whole_files(a: &TestEnv, b: &TestEnv) -> usize {
    let (ta, tb) = (tree(&a.journal()), tree(&b.journal()));
    let mut whole = 0;
    for (rel, bytes) in &tb {
        if rel.split('/').any(|s| s.starts_with(".devlogd-")) {
            continue; // a temporary name: never a final one
        }
        assert_eq!(ta.get(rel), Some(bytes), "{rel} is not A's version");
        whole += 1;
    }
    whole
}

#[test]
fn a_pull_killed_midway_resumes_and_pushes_nothing_back() {
    // Its own emulator: 1,500 files would load the shared one under other tests.
    let az = &Azurite::start();
    let container = unique_container("pull-kill");
    let (a, b) = (machine(az, &container), machine(az, &container));
    many(&a, 1500);
    let mut child = b.devlogd().args(["pull"]).spawn().unwrap();
    common::wait_for(
        std::time::Duration::from_secs(60),
        "a pull under way",
        || (tree(&b.journal()).len() >= 100).then_some(()),
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let placed = only_whole_files(&a, &b);
    assert!(placed < 1500, "the pull had finished before the kill");

    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    assert!(
        strings(&report["downloaded"]).len() <= 1500 - placed + 64,
        "{}",
        report["downloaded"]
    );
    let (pushed, _) = json(&b, &["push", "--all"], 0);
    assert_eq!(pushed["uploaded"], 0, "{pushed:#}");
}

#[test]
fn a_remote_gone_midway_stops_the_pull_and_the_next_one_finishes_it() {
    let data = tempfile::tempdir().unwrap();
    let mut az = Azurite::start_persistent(data.path(), None);
    let container = unique_container("pull-gone");
    let (a, b) = (machine(&az, &container), machine(&az, &container));
    many(&a, 1500);
    let child = b
        .devlogd()
        .args(["pull"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for(
        std::time::Duration::from_secs(60),
        "a pull under way",
        || (tree(&b.journal()).len() >= 100).then_some(()),
    );
    az.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // It won the race: everything came down before the stop.
        assert_eq!(tree(&a.journal()), tree(&b.journal()));
    } else {
        assert!(
            stderr.contains("run pull again") || stderr.contains("cannot"),
            "{stderr}"
        );
        only_whole_files(&a, &b);
    }
    az.restart();
    json(&b, &["pull"], 0);
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    let (pushed, _) = json(&b, &["push", "--all"], 0);
    assert_eq!(pushed["uploaded"], 0, "{pushed:#}");
}

/// In two-way mode a push another machine beat to a path skips it (no `.conflict-` copy);
/// the pull after it settles the path with a sync-conflict file, and the next push goes.
#[test]
fn a_push_beaten_to_a_path_is_settled_by_the_pull_after_it() {
    let az = Azurite::shared();
    let container = unique_container("pull-skip");
    let (a, b) = (two_way(az, &container), two_way(az, &container));
    a.write_file("notes.md", "v1\n");
    a.run(&["push"]).assert_code(0);
    json(&b, &["pull"], 0);
    a.write_file("notes.md", "A's edit\n");
    a.run(&["push"]).assert_code(0);
    b.write_file("notes.md", "B's edit\n");
    let (pushed, _) = json(&b, &["push"], 0);
    assert_eq!(pushed["conflicts"][0]["action"], "skipped", "{pushed:#}");
    assert!(
        !az.list_blobs(&container)
            .iter()
            .any(|b| b.name.contains(".conflict-")),
        "a backup-mode conflict copy"
    );
    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(
        report["conflicts"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
    assert_eq!(
        std::fs::read(b.journal().join("notes.md")).unwrap(),
        b"B's edit\n"
    );
    json(&b, &["push"], 0);
    json(&a, &["pull"], 0);
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    let texts: Vec<Vec<u8>> = tree(&a.journal()).into_values().collect();
    assert!(texts.contains(&b"A's edit\n".to_vec()) && texts.contains(&b"B's edit\n".to_vec()));
}

#[test]
fn a_conflict_found_on_both_machines_settles_in_one_conflict_file() {
    let az = Azurite::shared();
    let container = unique_container("pull-one-file");
    let (a, b) = (two_way(az, &container), two_way(az, &container));
    a.write_file("notes.md", "v0\n");
    a.run(&["push"]).assert_code(0);
    json(&b, &["pull"], 0);

    // A's save goes up first; B's push is beaten, B's pull keeps both, B's push follows.
    a.write_file("notes.md", "A's first\n");
    a.run(&["push"]).assert_code(0);
    b.write_file("notes.md", "B's save\n");
    json(&b, &["push"], 0);
    let (report, _) = json(&b, &["pull"], 0);
    let on_b = report["conflicts"][0]["conflict_file"]
        .as_str()
        .unwrap_or_else(|| panic!("{report:#}"))
        .to_string();
    json(&b, &["push"], 0);

    // Meanwhile A saved again without pulling: now A finds the conflict too. It writes B's
    // version into the conflict file B already pushed, not into a second one.
    a.write_file("notes.md", "A's second\n");
    let (report, _) = json(&a, &["pull"], 0);
    assert_eq!(report["conflicts"][0]["conflict_file"], on_b, "{report:#}");
    json(&a, &["push"], 0);
    json(&b, &["pull"], 0);

    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    let files = tree(&a.journal());
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["notes.md", on_b.as_str()],
        "one conflict file for one path"
    );
    assert_eq!(files["notes.md"], b"A's second\n");
    assert_eq!(files[&on_b], b"B's save\n");
    // A's first save, once in that conflict file, is in its history.
    let history = az.history_contents(&container, "journal");
    assert!(
        history.contains(&b"A's first\n".to_vec()),
        "A's first save is lost"
    );
    for env in [&a, &b] {
        let (again, _) = json(env, &["pull"], 0);
        assert_eq!(again["to_push"], 0, "{again:#}");
        assert!(strings(&again["downloaded"]).is_empty(), "{again:#}");
    }
}

/// B finds a conflict, and before its push carries the conflict file up, A saves again: B's
/// second conflict goes into the conflict file its first one wrote (its bytes are the base,
/// which the remote keeps), not into a second one. Two daemons under load made two conflict
/// files for one path this way.
#[test]
fn a_second_conflict_before_the_push_reuses_the_conflict_file_the_first_wrote() {
    let az = Azurite::shared();
    let container = unique_container("pull-reuse-unpushed");
    let (a, b) = (two_way(az, &container), two_way(az, &container));
    let first = conflict_on_b(&a, &b, "notes.md", "A's first\n", "B's save\n");
    // B has not pushed: A saves again, over its first save (which goes to the history).
    a.write_file("notes.md", "A's second\n");
    a.run(&["push"]).assert_code(0);
    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(report["conflicts"][0]["conflict_file"], first, "{report:#}");
    json(&b, &["push"], 0);
    json(&a, &["pull"], 0);
    one_conflict_file(
        az,
        &container,
        [&a, &b],
        &first,
        ("B's save\n", "A's second\n"),
        &["A's first\n"],
    );
}

/// B's conflict file, pushed, then written into by A (A's own conflict on the same path):
/// B's next conflict on that path writes into it again, over A's version of it (kept in the
/// history), and does not start a second one. Two daemons made two conflict files this way.
#[test]
fn a_conflict_file_another_machine_wrote_into_is_written_into_again() {
    let az = Azurite::shared();
    let container = unique_container("pull-reuse-moved");
    let (a, b) = (two_way(az, &container), two_way(az, &container));
    let file = conflict_on_b(&a, &b, "notes.md", "A0\n", "B0\n");
    json(&b, &["push"], 0);
    // A saved meanwhile: its conflict goes into B's conflict file (B's save, over A0).
    a.write_file("notes.md", "A1\n");
    let (report, _) = json(&a, &["pull"], 0);
    assert_eq!(report["conflicts"][0]["conflict_file"], file, "{report:#}");
    json(&a, &["push"], 0);
    // B saved meanwhile too: its conflict goes into the same file, now A's version of it.
    b.write_file("notes.md", "B1\n");
    let (report, _) = json(&b, &["pull"], 0);
    assert_eq!(report["conflicts"][0]["conflict_file"], file, "{report:#}");
    let (pushed, _) = json(&b, &["push"], 0);
    assert!(
        pushed["conflicts"].as_array().is_none_or(Vec::is_empty),
        "{pushed:#}"
    );
    json(&a, &["pull"], 0);
    one_conflict_file(
        az,
        &container,
        [&a, &b],
        &file,
        ("B1\n", "A1\n"),
        &["A0\n", "B0\n"],
    );
}

/// `path` made on A and pulled by B, then saved on both (A's save pushed): B's pull writes
/// A's save beside B's. Returns the conflict file's name; nothing of B's is pushed yet.
fn conflict_on_b(a: &TestEnv, b: &TestEnv, path: &str, on_a: &str, on_b: &str) -> String {
    a.write_file(path, "v0\n");
    a.run(&["push"]).assert_code(0);
    json(b, &["pull"], 0);
    a.write_file(path, on_a);
    a.run(&["push"]).assert_code(0);
    b.write_file(path, on_b);
    let (report, _) = json(b, &["pull"], 0);
    report["conflicts"][0]["conflict_file"]
        .as_str()
        .unwrap_or_else(|| panic!("{report:#}"))
        .to_string()
}

/// Both journals hold `notes.md` and one conflict file, `file`, with `(at_path, in_file)`;
/// every one of `saves` is in the remote history.
fn one_conflict_file(
    az: &Azurite,
    container: &str,
    [a, b]: [&TestEnv; 2],
    file: &str,
    (at_path, in_file): (&str, &str),
    saves: &[&str],
) {
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    let files = tree(&a.journal());
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["notes.md", file],
        "one conflict file for one path"
    );
    assert_eq!(files["notes.md"], at_path.as_bytes());
    assert_eq!(files[file], in_file.as_bytes());
    let history = az.history_contents(container, "journal");
    for save in saves {
        assert!(
            history.contains(&save.as_bytes().to_vec()),
            "{save:?} is lost"
        );
    }
}

/// A and B (two-way, one prefix), with `path` conflicted: B holds B's edit and A's
/// version in a sync-conflict file, both pushed; A has pulled. Returns the conflict file.
fn conflicted(a: &TestEnv, b: &TestEnv, path: &str) -> String {
    let file = conflict_on_b(a, b, path, "A's edit\n", "B's edit\n");
    json(b, &["push"], 0);
    // A's pull brings the conflict file down, and counts it as waiting (its status says so).
    let (pulled, _) = json(a, &["pull"], 0);
    assert_eq!(strings(&pulled["waiting"]), [file.as_str()], "{pulled:#}");
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    file
}

#[test]
fn conflicts_lists_the_conflict_files_and_resolve_keeps_theirs_on_every_machine() {
    let az = Azurite::shared();
    let container = unique_container("resolve-theirs");
    let (a, b) = (two_way(az, &container), two_way(az, &container));
    let file = conflicted(&a, &b, "notes.md");

    // Both machines see the waiting conflict file, with the host whose version it holds. On
    // A it is A's own edit (B's took the path): said, so "keep mine" is not misread.
    let host = devlogd::names::safe_host(&devlogd::machine::hostname());
    for (env, own) in [(&a, true), (&b, false)] {
        let (v, _) = json(env, &["conflicts"], 0);
        let waiting = v["sync_conflicts"].as_array().unwrap();
        assert_eq!(waiting.len(), 1, "{v:#}");
        assert_eq!(waiting[0]["file"], file.as_str(), "{v:#}");
        assert_eq!(waiting[0]["path"], "notes.md", "{v:#}");
        assert_eq!(waiting[0]["host"], host.as_str(), "{v:#}");
        assert_eq!(waiting[0]["own_version"], own, "{v:#}");
        let out = env.run(&["conflicts"]);
        out.assert_code(0);
        let label = if own {
            format!("notes.md ← {file} (this machine's own version of ")
        } else {
            format!("notes.md ← {file} ({host}'s version of ")
        };
        assert!(out.stdout.contains(&label), "{}", out.stdout);
        assert!(
            out.stdout
                .contains("--keep mine (the file at PATH as it is here)"),
            "{}",
            out.stdout
        );
    }

    // On B: keep theirs. A's version is at the path, B's own goes to the history.
    let (v, _) = json(
        &b,
        &["conflicts", "--resolve", "notes.md", "--keep", "theirs"],
        0,
    );
    assert_eq!(v["moved"], file.as_str(), "{v:#}");
    assert_eq!(v["pushed_by"], "here", "{v:#}");
    assert_eq!(v["kept_host"], host.as_str(), "{v:#}");
    assert_eq!(
        std::fs::read(b.journal().join("notes.md")).unwrap(),
        b"A's edit\n"
    );
    assert!(!b.journal().join(&file).exists());
    assert_eq!(
        az.get_blob(&container, "journal/notes.md").as_deref(),
        Some(&b"A's edit\n"[..])
    );
    assert!(
        az.get_blob(&container, &format!("journal/{file}"))
            .is_none(),
        "the conflict file is still on the remote"
    );
    let history = az.history_contents(&container, "journal");
    assert!(
        history.contains(&b"B's edit\n".to_vec()),
        "B's edit is lost"
    );

    // A follows with its next pull; nothing is left to settle anywhere.
    json(&a, &["pull"], 0);
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    assert_eq!(tree(&a.journal()).len(), 1);
    for env in [&a, &b] {
        let (v, _) = json(env, &["conflicts"], 0);
        assert!(v["sync_conflicts"].as_array().unwrap().is_empty(), "{v:#}");
    }
}

#[test]
fn resolve_keep_mine_deletes_the_conflict_files_everywhere_and_refuses_what_it_cannot_do() {
    let az = Azurite::shared();
    let container = unique_container("resolve-mine");
    let (a, b) = (two_way(az, &container), two_way(az, &container));
    let file = conflicted(&a, &b, "2026/notes.md");

    // Nothing to settle, a conflict file named instead of its path, a path outside.
    for (args, says) in [
        (
            vec!["conflicts", "--resolve", "2026/other.md", "--keep", "mine"],
            "has no sync-conflict files here",
        ),
        (
            vec!["conflicts", "--resolve", file.as_str(), "--keep", "mine"],
            "is itself a conflict file",
        ),
        (
            vec!["conflicts", "--resolve", "../x.md", "--keep", "mine"],
            "is not a file in the journal",
        ),
    ] {
        let out = a.run(&args);
        out.assert_code(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    // A conflict file edited here and not pushed is not deleted.
    a.write_file(&file, "merged by hand, not pushed\n");
    let out = a.run(&["conflicts", "--resolve", "2026/notes.md", "--keep", "mine"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("not on the remote as it is here"),
        "{}",
        out.stderr
    );
    assert!(a.journal().join(&file).exists());
    a.write_file(&file, "A's edit\n");

    // Keep mine on A: A's file at the path stays, the conflict file goes on both machines.
    let before = std::fs::read(a.journal().join("2026/notes.md")).unwrap();
    let out = a.run(&["conflicts", "--resolve", "2026/notes.md", "--keep", "mine"]);
    out.assert_code(0);
    // It says which version stayed and where the one that went is, never "yours" (on the
    // machine whose own edit is the conflict file, "yours" read the wrong way round).
    let host = devlogd::names::safe_host(&devlogd::machine::hostname());
    assert!(
        out.stdout.contains(&format!(
            "2026/notes.md: kept the version at the path ({host}'s); deleted {file} ({host}'s version, still in the remote history: devlogd history {file})"
        )),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("yours"), "{}", out.stdout);
    assert!(!a.journal().join(&file).exists());
    assert_eq!(
        std::fs::read(a.journal().join("2026/notes.md")).unwrap(),
        before
    );
    assert!(
        az.get_blob(&container, &format!("journal/{file}"))
            .is_none()
    );
    let (pulled, _) = json(&b, &["pull"], 0);
    assert_eq!(strings(&pulled["deleted"]), [file.as_str()], "{pulled:#}");
    assert_eq!(tree(&a.journal()), tree(&b.journal()));
    assert_eq!(tree(&b.journal()).len(), 1);
}
