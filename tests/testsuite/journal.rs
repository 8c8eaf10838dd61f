//! `devlog` in a temporary HOME: new / list / show / edit round trips, the events log, id
//! rules and errors, and an entry written under a running daemon arriving in Azurite.

use crate::common;

use common::daemon::Daemon;
use common::{Azurite, RunOutput, TestEnv, unique_container, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn devlog(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
    let mut cmd = env.devlog();
    cmd.args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run devlog");
    RunOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `devlog new` prints `ID  PATH`.
fn new_entry(env: &TestEnv, args: &[&str]) -> (String, PathBuf) {
    let mut all = vec!["new"];
    all.extend_from_slice(args);
    let out = devlog(env, &all, &[]);
    out.assert_code(0);
    let (id, path) = out.stdout.trim().split_once("  ").expect("ID  PATH");
    (id.to_string(), PathBuf::from(path))
}

/// An editor script: runs `body` (sh) with the file as $1.
fn editor_script(env: &TestEnv, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = env.root().join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn events(env: &TestEnv) -> Vec<serde_json::Value> {
    let dir = env.journal().join("events");
    let mut lines = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // events/YYYYMMDD-HOST-XXXXXX.jsonl: one file per machine and day.
        assert!(
            name.ends_with(".jsonl")
                && name.as_bytes()[8] == b'-'
                && name[..8].bytes().all(|b| b.is_ascii_digit()),
            "{name}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "whole lines only");
        for line in text.lines() {
            lines.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    lines
}

#[test]
fn new_list_show_edit_round_trip() {
    let env = TestEnv::new();
    let (id, path) = new_entry(
        &env,
        &[
            "-m",
            "# Shipped the daemon\n\nIt pushes every change within about a second.",
            "--tag",
            "rust",
            "--tag",
            "devlogd",
        ],
    );
    assert_eq!(id.len(), 6, "short generated id: {id}");
    let rel = path
        .strip_prefix(env.journal())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let today = time::OffsetDateTime::now_utc().date();
    let want_rel = format!(
        "entries/{:04}/{:02}/{:04}-{:02}-{:02}-{id}.md",
        today.year(),
        u8::from(today.month()),
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    assert_eq!(rel, want_rel);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("+++\n"), "{text}");
    assert!(text.contains(&format!("id = \"{id}\"")), "{text}");
    assert!(text.contains("tags = [\"rust\", \"devlogd\"]"), "{text}");
    assert!(text.contains("It pushes every change"), "{text}");

    let (second, _) = new_entry(&env, &["--id", "standup-2026-11-22", "-m", "Standup notes"]);
    assert_eq!(second, "standup-2026-11-22");

    // list: newest first; filters; JSON.
    let list = devlog(&env, &["list"], &[]);
    list.assert_code(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", list.stdout);
    assert!(
        lines.iter().any(|l| l.contains(&id)
            && l.contains("rust,devlogd")
            && l.contains("Shipped the daemon")),
        "{}",
        list.stdout
    );
    let json = devlog(&env, &["list", "--json", "--tag", "rust"], &[]);
    json.assert_code(0);
    let items: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["title"], "Shipped the daemon");
    let all: serde_json::Value =
        serde_json::from_str(devlog(&env, &["list", "--json"], &[]).stdout.trim()).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let future: serde_json::Value = serde_json::from_str(
        devlog(&env, &["list", "--json", "--since", "2999-01-01"], &[])
            .stdout
            .trim(),
    )
    .unwrap();
    assert!(future.as_array().unwrap().is_empty());
    devlog(&env, &["list", "--since", "yesterday"], &[]).assert_code(2);

    // show: the file as it is, or formatted.
    let show = devlog(&env, &["show", &id], &[]);
    show.assert_code(0);
    assert_eq!(show.stdout, text);
    let formatted = devlog(&env, &["show", "--formatted", &id], &[("COLUMNS", "30")]);
    formatted.assert_code(0);
    let f_lines: Vec<&str> = formatted.stdout.lines().collect();
    assert_eq!(f_lines[0], "Shipped the daemon");
    assert!(
        f_lines[1].contains("#rust #devlogd"),
        "{}",
        formatted.stdout
    );
    assert!(
        f_lines.iter().skip(3).all(|l| l.chars().count() <= 30),
        "wrapped: {}",
        formatted.stdout
    );
    assert!(!formatted.stdout.contains("+++"));

    // edit: the editor changes the body; `updated` moves, `created` and the id do not.
    // (The entry is aged first, so that "moved" does not depend on the clock ticking.)
    let old = "2020-01-02T03:04:05Z";
    let aged: String = text
        .lines()
        .map(|l| {
            if l.starts_with("created") || l.starts_with("updated") {
                format!("{} = \"{old}\"\n", &l[..7])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&path, &aged).unwrap();
    let editor = editor_script(
        &env,
        "append.sh",
        "printf 'Added in the editor.\\n' >> \"$1\"",
    );
    let edit = devlog(&env, &["edit", &id], &[("EDITOR", &editor)]);
    edit.assert_code(0);
    assert!(edit.stdout.contains("updated"), "{}", edit.stdout);
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.contains("Added in the editor."), "{after}");
    assert!(
        after.contains(&format!("created = \"{old}\"")),
        "created kept: {after}"
    );
    assert!(
        !after.contains(&format!("updated = \"{old}\"")),
        "updated moved: {after}"
    );

    // An editor that changes nothing leaves the file byte for byte.
    let noop = editor_script(&env, "noop.sh", "true");
    devlog(&env, &["edit", &id], &[("EDITOR", &noop)]).assert_code(0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), after);

    // An editor that fails leaves the entry as it was, whatever it wrote.
    let failing = editor_script(&env, "fail.sh", "printf 'half-written' > \"$1\"\nexit 3");
    let out = devlog(&env, &["edit", &id], &[("EDITOR", &failing)]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("the entry is unchanged"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), after);

    // $VISUAL wins over $EDITOR, and `new` without -m uses it.
    let writer = editor_script(&env, "write.sh", "printf 'Written in VISUAL\\n' > \"$1\"");
    let out = devlog(&env, &["new"], &[("VISUAL", &writer), ("EDITOR", &failing)]);
    out.assert_code(0);
    let (new_id, new_path) = out.stdout.trim().split_once("  ").unwrap();
    assert!(
        std::fs::read_to_string(new_path)
            .unwrap()
            .contains("Written in VISUAL")
    );
    assert_eq!(devlog(&env, &["show", new_id], &[]).status.code(), Some(0));

    // No temporaries left in the journal.
    let hidden: Vec<_> = walk(&env.journal())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn an_edit_never_overwrites_a_change_made_meanwhile_and_its_scratch_file_is_private() {
    let env = TestEnv::new();
    let (id, path) = new_entry(&env, &["-m", "original"]);
    let seen = env.root().join("scratch-mode");
    // The "editor" records its file's mode, edits it, and meanwhile the entry itself is
    // changed by someone else (another editor, a sync tool).
    let editor = editor_script(
        &env,
        "racing.sh",
        &format!(
            "stat -c %a \"$1\" > {seen}\nprintf 'my edit\\n' >> \"$1\"\nprintf 'their change\\n' >> {entry}",
            seen = seen.display(),
            entry = path.display()
        ),
    );
    let out = devlog(&env, &["edit", &id], &[("EDITOR", &editor)]);
    out.assert_code(2);
    assert!(out.stderr.contains("changed on disk"), "{}", out.stderr);
    let kept = out
        .stderr
        .split("kept in ")
        .nth(1)
        .map(str::trim)
        .expect("the message names the kept file");
    assert!(std::fs::read_to_string(kept).unwrap().contains("my edit"));
    let entry = std::fs::read_to_string(&path).unwrap();
    assert!(
        entry.contains("their change") && !entry.contains("my edit"),
        "{entry}"
    );
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "600");
    let _ = std::fs::remove_file(kept);
}

#[test]
fn every_change_appends_one_valid_json_line_and_reading_appends_none() {
    let env = TestEnv::new();
    let (id, _) = new_entry(&env, &["-m", "one"]);
    devlog(&env, &["show", &id], &[]).assert_code(0);
    devlog(&env, &["list"], &[]).assert_code(0);
    let noop = editor_script(&env, "noop.sh", "true");
    devlog(&env, &["edit", &id], &[("EDITOR", &noop)]).assert_code(0);
    devlog(&env, &["push", "--dry-run"], &[]).assert_code(0);
    let ev = events(&env);
    let actions: Vec<&str> = ev.iter().map(|e| e["action"].as_str().unwrap()).collect();
    // Reading the journal writes nothing: only actions that change it are logged.
    assert_eq!(actions, vec!["new"]);
    for e in &ev {
        let t = e["time"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(),
            "{t}"
        );
    }
    assert_eq!(ev[0]["id"], id.as_str());

    // Concurrent writers never interleave inside a line.
    let children: Vec<_> = (0..8)
        .map(|i| {
            env.devlog()
                .args(["new", "-m", &format!("parallel {i}")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(events(&env).len(), 9, "every line parsed as JSON");
}

#[test]
fn ids_are_validated_and_errors_are_one_line_with_exit_2() {
    let env = TestEnv::new();
    new_entry(&env, &["--id", "taken", "-m", "x"]);
    for (args, want) in [
        (vec!["new", "--id", "taken", "-m", "y"], "is taken"),
        (vec!["new", "--id", "../escape", "-m", "y"], "invalid id"),
        (vec!["new", "--id", "a/b", "-m", "y"], "invalid id"),
        (vec!["new", "--id", "..", "-m", "y"], "invalid id"),
        (
            vec!["new", "--id", &"x".repeat(65), "-m", "y"],
            "invalid id",
        ),
        (vec!["new", "-m", "   "], "empty"),
        (vec!["new"], "no editor"),
        (vec!["show", "missing"], "no entry with id `missing`"),
        (vec!["edit", "missing"], "no entry with id `missing`"),
        (vec!["edit", "taken"], "no editor"),
    ] {
        let out = devlog(&env, &args, &[]);
        out.assert_code(2);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!env.journal().join("escape").exists());
    // An unwritable root: a file where the journal directory should be.
    let blocked = TestEnv::new();
    std::fs::remove_dir_all(blocked.journal()).unwrap();
    std::fs::write(blocked.journal(), "not a directory").unwrap();
    let out = devlog(&blocked, &["new", "-m", "x"], &[]);
    out.assert_code(2);
    assert!(out.stderr.contains("cannot"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}

#[test]
fn push_uses_the_daemon_when_it_runs_and_the_pipeline_when_not() {
    let env = TestEnv::new();
    new_entry(&env, &["-m", "pushed directly"]);
    let out = devlog(&env, &["push"], &[]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("No devlogd running: pushing directly"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("uploaded    2 files"), "{}", out.stdout);
}

#[test]
fn an_entry_written_under_a_running_daemon_becomes_a_blob() {
    let az = Azurite::shared();
    let container = unique_container("journal");
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    let mut daemon = Daemon::start(&env);
    let (id, path) = new_entry(
        &env,
        &[
            "-m",
            "# Written with devlog\n\nand backed up by devlogd",
            "-t",
            "e2e",
        ],
    );
    let rel = path
        .strip_prefix(env.journal())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let bytes = std::fs::read(&path).unwrap();
    wait_for(Duration::from_secs(30), "the entry's blob", || {
        (az.get_blob(&container, &rel).as_deref() == Some(bytes.as_slice())).then_some(())
    });
    assert!(rel.ends_with(&format!("-{id}.md")));
    // `devlog push` goes through the daemon now.
    let out = devlog(
        &env,
        &["push"],
        &[("AZURE_STORAGE_SAS_TOKEN", &az.account_sas())],
    );
    out.assert_code(0);
    assert!(
        out.stderr.contains("Pushing through the running devlogd"),
        "{}",
        out.stderr
    );
    let names: Vec<String> = az
        .list_blobs(&container)
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("events/") && n.ends_with(".jsonl")),
        "{names:?}"
    );
    env.run(&["ctl", "stop"]).assert_code(0);
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
}

/// Two machines in two-way mode (pull by hand): A's entry shows up in B's `devlog list`; an
/// entry both edited is listed once as the entry and once marked as a conflict file from
/// A's host (not as a second entry with the same id); an entry renamed on A is still found
/// by `devlog show ID` on both machines.
#[test]
fn the_journal_tool_shows_other_machines_entries_and_marks_conflict_files() {
    let az = Azurite::shared();
    let container = unique_container("journal-two-way");
    let machine = || {
        let env = TestEnv::new().with_sas(az.account_sas());
        env.write_config(&format!(
            "[remote]\nurl = \"{}/journal\"\n\n[sync]\nmode = \"two-way\"\n",
            az.container_url(&container)
        ));
        env
    };
    let (a, b) = (machine(), machine());
    let (id, path) = new_entry(&a, &["--tag", "sync", "-m", "Made on A"]);
    let (other, other_path) = new_entry(&a, &["-m", "Another one"]);
    a.run(&["push"]).assert_code(0);
    b.run(&["pull"]).assert_code(0);
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(devlog(&b, &["list", "--json"], &[]).stdout.trim()).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().all(|e| e["conflict_host"].is_null()),
        "{listed:?}"
    );

    // Both edit the first entry: B keeps its own and gets A's beside it.
    let rel = path.strip_prefix(a.journal()).unwrap().to_path_buf();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("Made on A", "Made on A, edited on A")).unwrap();
    a.run(&["push"]).assert_code(0);
    let on_b = b.journal().join(&rel);
    std::fs::write(&on_b, text.replace("Made on A", "Made on A, edited on B")).unwrap();
    b.run(&["pull"]).assert_code(0);
    let host = devlogd::names::safe_host(&devlogd::machine::hostname());
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(devlog(&b, &["list", "--json"], &[]).stdout.trim()).unwrap();
    let with_id: Vec<&serde_json::Value> =
        listed.iter().filter(|e| e["id"] == id.as_str()).collect();
    assert_eq!(with_id.len(), 2, "{listed:?}");
    assert_eq!(
        with_id
            .iter()
            .filter(|e| e["conflict_host"] == host.as_str())
            .count(),
        1,
        "the conflict file is not marked: {listed:?}"
    );
    let table = devlog(&b, &["list"], &[]);
    table.assert_code(0);
    assert!(
        table.stdout.contains(&format!("{id} (conflict, {host})")),
        "{}",
        table.stdout
    );
    // `show` is the entry's own file, B's words.
    let shown = devlog(&b, &["show", &id], &[]);
    shown.assert_code(0);
    assert!(shown.stdout.contains("edited on B"), "{}", shown.stdout);

    // A renames the other entry's file; both machines still find it by its id.
    let renamed = other_path.with_file_name("renamed-by-hand.md");
    std::fs::rename(&other_path, &renamed).unwrap();
    a.run(&["push"]).assert_code(0);
    b.run(&["pull"]).assert_code(0);
    for env in [&a, &b] {
        let shown = devlog(env, &["show", &other], &[]);
        shown.assert_code(0);
        assert!(shown.stdout.contains("Another one"), "{}", shown.stdout);
    }
}
