//! Conflicts a person can see and resolve, with two HOMEs on one Azurite prefix: machine A
//! pushes notes.md first, machine B's own notes.md becomes a conflict copy. `verify` names
//! the conflict and the commands that resolve it (not `push --all`, which resolves
//! nothing), `devlogd conflicts` lists it on both machines, `--fetch` brings the other
//! version next to the local file (never over a file), `ctl status` counts it, and
//! `push --on-conflict overwrite` or deleting the conflict copy makes it go away.

use crate::common;

use common::daemon::{Daemon, status};
use common::{Azurite, RunOutput, TestEnv, unique_container, wait_for};
use std::time::Duration;

fn machine(az: &Azurite, container: &str) -> TestEnv {
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n",
        az.container_url(container)
    ));
    env
}

fn json(out: &RunOutput) -> serde_json::Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

/// A and B on one prefix; A's notes.md is at the path, B's in a conflict copy.
fn two_writers() -> (&'static Azurite, String, TestEnv, TestEnv, String) {
    let az = Azurite::shared();
    let container = unique_container("conflicts");
    let (a, b) = (machine(az, &container), machine(az, &container));
    a.write_file("notes.md", "A's notes\n");
    let first = a.run(&["push"]);
    first.assert_code(0);
    // The first push made the container: it says so.
    assert!(
        first
            .stdout
            .contains(&format!("created container {container} (it did not exist")),
        "{}",
        first.stdout
    );
    b.write_file("notes.md", "B's notes\n");
    let out = b.run(&["push", "--json"]);
    out.assert_code(0);
    let report = json(&out);
    assert_eq!(report["conflicts"][0]["action"], "kept-both", "{report:#}");
    assert!(report.get("created_container").is_none(), "{report:#}");
    let copy = report["conflicts"][0]["copy"].as_str().unwrap().to_string();
    (az, container, a, b, copy)
}

#[test]
fn verify_names_the_conflict_and_overwrite_resolves_it() {
    let (_az, _container, _a, b, copy) = two_writers();
    let out = b.run(&["verify"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("conflict           notes.md (another writer changed it too)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("run `devlogd conflicts` to see them"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("push --all"),
        "push --all resolves no conflict: {}",
        out.stdout
    );
    let v = json(&b.run(&["verify", "--json"]));
    assert_eq!(v["conflicts"], serde_json::json!(["notes.md"]), "{v:#}");
    assert_eq!(v["differs"], serde_json::json!([]), "{v:#}");

    // Listed, with the copy that holds B's version.
    let out = b.run(&["conflicts"]);
    out.assert_code(0);
    assert!(out.stdout.contains("1 path(s) on "), "{}", out.stdout);
    assert!(
        out.stdout.contains("the remote holds another version"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("conflict copy {copy}")),
        "{}",
        out.stdout
    );
    let listed = json(&b.run(&["conflicts", "--json"]));
    assert_eq!(listed["conflicts"][0]["path"], "notes.md");
    assert_eq!(listed["conflicts"][0]["theirs_at_path"], true);
    assert_eq!(listed["conflicts"][0]["copies"][0]["name"], copy.as_str());

    // The daemon counts it.
    let _d = Daemon::start(&b);
    let s = wait_for(Duration::from_secs(60), "the conflict counted", || {
        let s = status(&b);
        (s["conflicts"] == 1 && s.verdict.state == "conflicts").then_some(s)
    });
    assert!(
        s["verdict"]["text"]
            .as_str()
            .unwrap()
            .ends_with("— run devlogd conflicts"),
        "{s:#}"
    );
    let text = b.run(&["ctl", "status"]);
    assert!(
        text.stdout.contains(
            "conflicts      1 path(s) another writer changed too: run `devlogd conflicts`"
        ),
        "{}",
        text.stdout
    );

    // Keep B's version: verify is clean (the copy is only on the remote).
    b.run(&["push", "--on-conflict", "overwrite"])
        .assert_code(0);
    let out = b.run(&["verify"]);
    out.assert_code(0);
    let out = b.run(&["conflicts", "--json"]);
    let listed = json(&out);
    assert_eq!(
        listed["conflicts"][0]["theirs_at_path"], false,
        "{listed:#}"
    );
}

#[test]
fn fetch_puts_the_other_version_beside_the_local_file_and_never_over_one() {
    let (az, container, a, b, copy) = two_writers();
    // B: the other version is A's, at the path.
    let out = b.run(&["conflicts", "--fetch"]);
    out.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(b.journal().join("notes.md.theirs")).unwrap(),
        "A's notes\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.journal().join("notes.md")).unwrap(),
        "B's notes\n"
    );
    // Again: the file is there, it is left alone.
    std::fs::write(b.journal().join("notes.md.theirs"), "merged by hand\n").unwrap();
    let out = b.run(&["conflicts", "--fetch"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("not fetched notes.md.theirs: notes.md.theirs already exists"),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_to_string(b.journal().join("notes.md.theirs")).unwrap(),
        "merged by hand\n"
    );

    // A: the other version is B's, in the conflict copy.
    let out = a.run(&["conflicts", "--fetch", "--json"]);
    out.assert_code(0);
    let report = json(&out);
    let to = format!("{copy}.theirs");
    assert_eq!(report["fetched"][0]["to"], to.as_str(), "{report:#}");
    assert_eq!(
        std::fs::read_to_string(a.journal().join(&to)).unwrap(),
        "B's notes\n"
    );
    // A verifies clean: its notes.md is at the path.
    a.run(&["verify"]).assert_code(0);
    // Merged: deleting the copy leaves no conflict on A's side.
    assert!(az.delete_blob(&container, &format!("journal/{copy}")));
    let out = a.run(&["conflicts"]);
    out.assert_code(0);
    assert!(out.stdout.starts_with("No conflicts on "), "{}", out.stdout);
}
