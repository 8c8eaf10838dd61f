//! Issue 26: end-to-end encryption (`[encryption] enabled = true`), through the real binary
//! against Azurite and the directory remote. Everything the remote holds is read back by an
//! independent client (Blob REST with the account SAS; the mirror's files, names and
//! extended attributes) and checked for anything in clear; restore, `restore --at` and
//! two-way sync bring the plaintext back byte for byte; a wrong or missing passphrase stops
//! every command before anything is written (exit 7); a tampered blob is refused and never
//! written; a prefix is never switched between clear and encrypted; and the key commands
//! (`passwd`, `export`, `import`) keep the journal recoverable.

use crate::common;

use common::backend::{AzureBackend, Backend, DirectoryBackend, HISTORY, env_for, tree};
use common::daemon::{Daemon, running, settled};
use common::{Azurite, RunOutput, TestEnv, json, unique_container, wait_for};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// The passphrase the journals are made with (spaces included, as a real one has).
const PASS: &str = "correct horse battery staple";
/// A passphrase that unlocks nothing.
const WRONG: &str = "incorrect horse battery staple";
/// Text that must never be readable on the remote: in names, directory names and contents.
const MARKER: &str = "SALARY-7f3a";
/// The configuration that turns encryption on.
const ENCRYPTED: &str = "[encryption]\nenabled = true\n";
const SETTLE: Duration = Duration::from_secs(60);

/// The key blob, and the change mark: what the remote keeps for itself in the history
/// area (no journal files).
const RESERVED: [&str; 2] = [".devlog-history/.key", ".devlog-history/.changed"];
const KEY_BLOB: &str = RESERVED[0];

// ---- journals, configurations, passphrases ------------------------------------------------

/// A journal on `backend` with encryption on (`extra` appended under `[encryption]`), and
/// `passphrase` in its 0600 credentials file (`None`: no passphrase anywhere).
fn encrypted_env<B: Backend>(
    backend: &B,
    env: TestEnv,
    extra: &str,
    passphrase: Option<&str>,
) -> TestEnv {
    let env = env_for(backend, env, &format!("\n{ENCRYPTED}{extra}"));
    if let Some(passphrase) = passphrase {
        give_passphrase(&env, passphrase);
    }
    env
}

/// A fresh backend and an encrypted journal on it, unlocked with [`PASS`].
fn encrypted_world<B: Backend>() -> (TestEnv, B) {
    let env = TestEnv::new();
    let backend = B::setup(&env);
    (encrypted_env(&backend, env, "", Some(PASS)), backend)
}

/// Another machine (a fresh HOME, nothing local) on `backend`, unlocked with `passphrase`.
fn other_machine<B: Backend>(backend: &B, passphrase: Option<&str>) -> TestEnv {
    encrypted_env(backend, TestEnv::new(), "", passphrase)
}

/// `DEVLOG_PASSPHRASE` in the credentials file (0600), replacing what was there.
fn give_passphrase(env: &TestEnv, passphrase: &str) {
    let path = env.config_home().join("devlog/credentials");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("DEVLOG_PASSPHRASE=\"{passphrase}\"\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `devlogd ARGS` with `DEVLOG_PASSPHRASE=passphrase` in its environment.
fn run_with_passphrase(env: &TestEnv, passphrase: &str, args: &[&str]) -> RunOutput {
    env.run_with_env(
        &[("DEVLOG_PASSPHRASE", passphrase)],
        args,
        Duration::from_secs(60),
    )
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A file larger than one 4 MiB block (so it is uploaded in blocks), [`MARKER`] at its
/// start, across the first block boundary and at its end.
fn big_marked_file() -> Vec<u8> {
    let mut big: Vec<u8> = (0..5 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    let len = big.len();
    for at in [0, 4 * 1024 * 1024 - 4, len - MARKER.len()] {
        big[at..at + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    }
    big
}

/// A journal whose names and contents carry [`MARKER`] and other text worth hiding: a
/// directory named by it, an entry, an events file, a file of several blocks.
fn marked_journal(env: &TestEnv) -> BTreeMap<String, Vec<u8>> {
    let files: BTreeMap<String, Vec<u8>> = [
        (
            format!("{MARKER}/review-{MARKER}.md"),
            format!("# review\n{MARKER}: 123456 a year\n").into_bytes(),
        ),
        (
            "entries/standup-notes.md".to_string(),
            format!("standup: talked about {MARKER}\n").into_bytes(),
        ),
        (
            "events/20261203.jsonl".to_string(),
            format!("{{\"event\":\"note\",\"text\":\"{MARKER}\"}}\n").into_bytes(),
        ),
        ("attachments/payslip-scan.md".to_string(), big_marked_file()),
        (
            "obsolete-plan.md".to_string(),
            format!("to be deleted: {MARKER}\n").into_bytes(),
        ),
    ]
    .into_iter()
    .collect();
    for (rel, bytes) in &files {
        env.write_file(rel, bytes);
    }
    files
}

/// Text of `paths` that must not show on the remote: every segment, and every word of five
/// characters or more in one.
fn secrets_of<'a>(paths: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out = vec![MARKER.to_string()];
    for path in paths {
        for segment in path.split('/') {
            out.push(segment.to_string());
            out.extend(
                segment
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|word| word.len() >= 5)
                    .map(str::to_string),
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

// ---- what another client sees -------------------------------------------------------------

/// Everything a client without the key can read of a remote.
#[derive(Default)]
struct Exposed {
    /// Every blob name (Azure), every file and directory name (directory remote).
    names: Vec<String>,
    /// (blob, what is said of it): Azure's listing entry with metadata and properties;
    /// each extended attribute of a mirror file, `NAME=VALUE`.
    metadata: Vec<(String, String)>,
    /// (blob, bytes) of every blob.
    contents: Vec<(String, Vec<u8>)>,
}

trait Inspect: Backend {
    /// All of it, through a client that is not devlogd.
    fn exposed(&self) -> Exposed;
    /// Each blob name with its ETag (or, on the mirror, its bytes' MD5 and mtime): equal
    /// before and after means nothing was written.
    fn fingerprint(&self) -> Vec<String>;
}

impl Inspect for AzureBackend {
    fn exposed(&self) -> Exposed {
        let mut seen = Exposed::default();
        for element in self
            .az
            .list_blob_elements(&self.container, "metadata,snapshots,uncommittedblobs")
        {
            let name = common::xml_text(&element, "Name").expect("a listed blob has a name");
            let bytes = self
                .az
                .get_blob(&self.container, &name)
                .unwrap_or_else(|| panic!("{name} listed but not there"));
            seen.names.push(name.clone());
            seen.metadata.push((name.clone(), element));
            seen.contents.push((name, bytes));
        }
        seen
    }

    fn fingerprint(&self) -> Vec<String> {
        self.az
            .list_blobs(&self.container)
            .into_iter()
            .map(|b| format!("{} {}", b.name, b.etag))
            .collect()
    }
}

impl Inspect for DirectoryBackend {
    fn exposed(&self) -> Exposed {
        let mut seen = Exposed::default();
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path
                    .strip_prefix(&self.dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                for attribute in xattrs(&path) {
                    seen.metadata.push((rel.clone(), attribute));
                }
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    stack.push(path);
                } else {
                    seen.contents
                        .push((rel.clone(), std::fs::read(&path).unwrap()));
                }
                seen.names.push(rel);
            }
        }
        seen
    }

    fn fingerprint(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        tree(&self.dir)
            .into_iter()
            .filter(|(name, _)| !name.starts_with(".devlogd"))
            .map(|(name, bytes)| {
                let meta = std::fs::metadata(self.dir.join(&name)).unwrap();
                let (secs, nsec) = (meta.mtime(), meta.mtime_nsec());
                format!("{name} {} {secs}.{nsec:09}", md5_hex(&bytes))
            })
            .collect()
    }
}

/// Every extended attribute of `path` (not following a link), as `NAME=VALUE`.
fn xattrs(path: &Path) -> Vec<String> {
    let mut names = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
    names[..n]
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let name = String::from_utf8_lossy(name).into_owned();
            let mut value = vec![0u8; 64 * 1024];
            let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..])
                .unwrap_or_else(|e| panic!("reading {name} of {}: {e}", path.display()));
            format!("{name}={}", String::from_utf8_lossy(&value[..len]))
        })
        .collect()
}

fn lower(bytes: &[u8]) -> Vec<u8> {
    bytes.to_ascii_lowercase()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// No name, metadata value or byte on the remote holds a secret (in any case); no name or
/// metadata value holds the MD5 of any plaintext version (hex or base64); no blob carries
/// the writer's host in clear.
fn assert_nothing_in_clear(seen: &Exposed, secrets: &[String], plaintexts: &[Vec<u8>]) {
    assert!(
        !seen.contents.is_empty(),
        "the remote holds nothing: nothing checked"
    );
    let md5s: Vec<String> = plaintexts
        .iter()
        .flat_map(|p| [md5_hex(p), common::md5_b64(p).to_ascii_lowercase()])
        .collect();
    let described = seen
        .names
        .iter()
        .map(|n| (n, n))
        .chain(seen.metadata.iter().map(|(n, m)| (n, m)));
    for (blob, text) in described {
        let text = lower(text.as_bytes());
        for secret in secrets.iter().chain(&md5s) {
            assert!(
                !contains(&text, &lower(secret.as_bytes())),
                "{secret:?} readable in the name or metadata of {blob:?}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        for host in ["devlogdhost", "user.devlogd.host"] {
            assert!(
                !contains(&text, host.as_bytes()),
                "{blob:?} names its host in clear: {}",
                String::from_utf8_lossy(&text)
            );
        }
    }
    for (blob, bytes) in &seen.contents {
        let bytes = lower(bytes);
        for secret in secrets.iter().filter(|s| s.len() >= 6) {
            assert!(
                !contains(&bytes, &lower(secret.as_bytes())),
                "{secret:?} readable in the bytes of {blob:?}"
            );
        }
    }
}

/// The versions in the history area (the remote's own blobs left out), counted by the
/// stored name of the path they are versions of.
fn history_by_path(names: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for name in names {
        let Some(rest) = name.strip_prefix(HISTORY).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        if RESERVED.contains(&name.as_str()) {
            continue;
        }
        let (path, _version) = rest
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("a version name without a version: {name}"));
        *out.entry(path.to_string()).or_insert(0) += 1;
    }
    out
}

// ---- 1. nothing in clear --------------------------------------------------------------------

fn names_contents_and_metadata_never_show_on_the_remote<B: Backend + Inspect>() {
    let (env, backend) = encrypted_world::<B>();
    let mut journal = marked_journal(&env);
    let mut every_version: Vec<Vec<u8>> = journal.values().cloned().collect();
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(report["uploaded"], journal.len(), "{report}");

    // Edits through a running daemon: replaced versions go to history, a delete too.
    let daemon = running(&env, SETTLE);
    let review = format!("{MARKER}/review-{MARKER}.md");
    let (v2, v3) = (
        format!("# review v2\n{MARKER}: 13\n").into_bytes(),
        format!("# review v3\n{MARKER}: 140000000\n").into_bytes(),
    );
    let review_sizes = vec![journal[&review].len(), v2.len(), v3.len()];
    let events = "events/20261203.jsonl";
    let mut appended = journal[events].clone();
    appended.extend_from_slice(format!("{{\"event\":\"edit\",\"on\":\"{MARKER}\"}}\n").as_bytes());
    let edits: Vec<(&str, Option<Vec<u8>>)> = vec![
        (&review, Some(v2)),
        (&review, Some(v3)),
        (events, Some(appended)),
        ("obsolete-plan.md", None),
    ];
    for (i, (rel, bytes)) in edits.into_iter().enumerate() {
        match &bytes {
            Some(bytes) => {
                env.write_file(rel, bytes);
                every_version.push(bytes.clone());
                journal.insert(rel.to_string(), bytes.clone());
            }
            None => {
                std::fs::remove_file(env.journal().join(rel)).unwrap();
                journal.remove(rel);
            }
        }
        common::poll_until(SETTLE, || {
            let kept: usize = history_by_path(&backend.names()).values().sum();
            (kept == i + 1 && settled(&env)).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "edit {i} ({rel}) never reached the remote's history: {:?}\n{}",
                backend.names(),
                daemon.log_text()
            )
        });
    }
    drop(daemon);

    // The history holds the replaced versions: two of one path, one of another (both still
    // current), and the deleted file's (no longer current).
    let names = backend.names();
    let current = backend.current();
    let history = history_by_path(&names);
    let mut counts: Vec<usize> = history.values().copied().collect();
    counts.sort();
    assert_eq!(counts, vec![1, 1, 2], "{history:?}");
    let still_current = history.keys().filter(|path| current.contains(path)).count();
    assert_eq!(still_current, 2, "{history:?} vs {current:?}");
    assert_eq!(current.len(), journal.len(), "{current:?}");
    let (versions, _) = json(&env, &["history", &review], 0);
    let sizes: Vec<usize> = versions["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{versions}"))
        .iter()
        .map(|v| v["size"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(sizes, review_sizes, "oldest first: {versions}");

    // Nothing of it is readable on the remote, though its metadata was read (each stored
    // version carries its sealed MD5 and host).
    let seen = backend.exposed();
    let sealed = seen
        .metadata
        .iter()
        .filter(|(_, m)| m.contains("sealed"))
        .count();
    assert!(sealed >= every_version.len(), "{sealed} sealed values read");
    let all_paths: Vec<String> = every_path(&journal, &["obsolete-plan.md"]);
    assert_nothing_in_clear(&seen, &secrets_of(&all_paths), &every_version);
    // What devlogd itself reads back is the journal.
    env.run(&["verify"]).assert_code(0);
}

/// The journal's paths and the ones deleted from it.
fn every_path(journal: &BTreeMap<String, Vec<u8>>, deleted: &[&str]) -> Vec<String> {
    journal
        .keys()
        .cloned()
        .chain(deleted.iter().map(|d| d.to_string()))
        .collect()
}

mod azure {
    use super::*;

    #[test]
    fn names_contents_and_metadata_never_show_on_the_remote() {
        super::names_contents_and_metadata_never_show_on_the_remote::<AzureBackend>();
    }
}

mod directory {
    use super::*;

    #[test]
    fn names_contents_and_metadata_never_show_on_the_remote() {
        super::names_contents_and_metadata_never_show_on_the_remote::<DirectoryBackend>();
    }
}

// ---- 2. the way back --------------------------------------------------------------------------

#[test]
fn restore_into_a_fresh_home_and_at_a_time_gives_the_plaintext_back() {
    let (env, backend) = encrypted_world::<AzureBackend>();
    let first = marked_journal(&env);
    json(&env, &["push"], 0);
    let then = now_rfc3339();
    let review = format!("{MARKER}/review-{MARKER}.md");
    env.write_file(&review, "# review, rewritten\n");
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(report["uploaded"], 1, "{report}");
    let now = tree(&env.journal());
    assert_ne!(now, first);

    // A new laptop with the passphrase: the journal, byte for byte.
    let fresh = other_machine(&backend, Some(PASS));
    let (report, _) = json(&fresh, &["restore"], 0);
    assert_eq!(report["restored"], now.len(), "{report}");
    assert_eq!(tree(&fresh.journal()), now, "byte-identical tree");
    let (report, _) = json(&fresh, &["push"], 0);
    assert_eq!(report["uploaded"], 0, "{report}");

    // As it was before the rewrite: the old bytes.
    let out = fresh.root().join("then");
    let (report, _) = json(
        &fresh,
        &["restore", "--at", &then, "--to", out.to_str().unwrap()],
        0,
    );
    assert_eq!(report["restored"], first.len(), "{report}");
    assert_eq!(tree(&out), first, "the journal as it was at {then}");
}

// ---- 3. two-way sync --------------------------------------------------------------------------

/// A machine in two-way mode on `container/journal`, encrypted, unlocked with [`PASS`].
fn two_way_machine(az: &Azurite, container: &str) -> TestEnv {
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n\n[sync]\nmode = \"two-way\"\npull_interval_s = 1\ndebounce_ms = 100\n\n{ENCRYPTED}",
        az.container_url(container)
    ));
    give_passphrase(&env, PASS);
    env
}

fn has(env: &TestEnv, rel: &str, bytes: &[u8]) -> Option<()> {
    (std::fs::read(env.journal().join(rel)).ok()?.as_slice() == bytes).then_some(())
}

#[test]
fn two_daemons_sync_both_ways_through_an_encrypted_prefix() {
    let az = Azurite::shared();
    let container = unique_container("enc-two-way");
    let (a, b) = (
        two_way_machine(az, &container),
        two_way_machine(az, &container),
    );
    let on_a = format!("# from A\n{MARKER} on machine A\n").into_bytes();
    a.write_file(&format!("{MARKER}/from-machine-a.md"), &on_a);
    let da = Daemon::start_with(&a, &[("DEVLOGD_MACHINE_ID", "machine-a")]);
    let remote = AzureBackend { az, container };
    wait_for(SETTLE, "A's key blob", || {
        remote
            .names()
            .contains(&format!("journal/{KEY_BLOB}"))
            .then_some(())
    });
    let db = Daemon::start_with(&b, &[("DEVLOGD_MACHINE_ID", "machine-b")]);

    let reached = |env: &TestEnv, rel: &str, bytes: &[u8], what: &str| {
        common::poll_until(SETTLE, || has(env, rel, bytes)).unwrap_or_else(|| {
            panic!(
                "{what} never arrived\nA's log:\n{}\nB's log:\n{}",
                da.log_text(),
                db.log_text()
            )
        })
    };
    reached(
        &b,
        &format!("{MARKER}/from-machine-a.md"),
        &on_a,
        "A's entry on B",
    );
    let on_b = format!("# from B\n{MARKER} on machine B\n").into_bytes();
    b.write_file("entries/from-machine-b.md", &on_b);
    reached(&a, "entries/from-machine-b.md", &on_b, "B's entry on A");
    let edited = format!("# from A, edited on B\n{MARKER}\n").into_bytes();
    b.write_file(&format!("{MARKER}/from-machine-a.md"), &edited);
    reached(
        &a,
        &format!("{MARKER}/from-machine-a.md"),
        &edited,
        "B's edit on A",
    );

    let trees = wait_for(SETTLE, "both trees the same and idle", || {
        let (ta, tb) = (tree(&a.journal()), tree(&b.journal()));
        (ta == tb && settled(&a) && settled(&b)).then_some(ta)
    });
    assert_eq!(trees.len(), 2, "{:?}", trees.keys());
    // Each daemon says it encrypts, where people look.
    for env in [&a, &b] {
        assert_eq!(common::status::status(env)["encrypted"], true);
        let out = env.run(&["ctl", "status"]);
        out.assert_code(0);
        assert!(
            out.stdout.contains("two-way, pull every 1 s, encrypted"),
            "{}",
            out.stdout
        );
    }
    let paths: Vec<String> = trees.keys().cloned().collect();
    assert_nothing_in_clear(
        &remote.exposed(),
        &secrets_of(&paths),
        &[on_a, on_b, edited],
    );
}

// ---- 4. a wrong or missing passphrase ---------------------------------------------------------

/// The files of the state dir with their MD5s; the instance lock's content (the pid of the
/// last process that took it) left out.
fn state_files(env: &TestEnv) -> BTreeMap<String, String> {
    tree(&env.state_home())
        .into_iter()
        .map(|(name, bytes)| {
            let digest = if name.ends_with("devlogd.lock") {
                String::new()
            } else {
                md5_hex(&bytes)
            };
            (name, digest)
        })
        .collect()
}

/// Exit `code`, and stderr naming each of `needles`.
fn assert_refused(out: &RunOutput, args: &[&str], code: i32, needles: &[&str]) {
    out.assert_code(code);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "{args:?}: no {needle:?} in {}",
            out.stderr
        );
    }
}

/// Exit 7, one line on stderr naming the passphrase and `needles`.
fn assert_locked(out: &RunOutput, args: &[&str], needles: &[&str]) {
    assert_refused(out, args, 7, needles);
    let stderr = out.stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    assert!(stderr.contains("passphrase"), "{args:?}: {stderr}");
}

#[test]
fn a_wrong_or_missing_passphrase_stops_every_command_before_anything_is_written() {
    let (env, backend) = encrypted_world::<AzureBackend>();
    env.write_file("a.md", "pushed\n");
    json(&env, &["push"], 0);
    env.write_file("b.md", "not pushed yet\n");
    let remote_before = backend.fingerprint();
    let state_before = state_files(&env);
    let journal_before = tree(&env.journal());

    // The machine that pushed, with a wrong passphrase.
    let out_dir = env.root().join("restored");
    let out = out_dir.to_str().unwrap();
    for args in [
        &["push"][..],
        &["push", "--all"],
        &["history", "a.md"],
        &["verify"],
        &["restore", "--to", out],
    ] {
        let run = run_with_passphrase(&env, WRONG, args);
        assert_locked(&run, args, &["DEVLOG_PASSPHRASE"]);
    }
    let daemon = env.run_with_env(
        &[("DEVLOG_PASSPHRASE", WRONG)],
        &["run"],
        Duration::from_secs(30),
    );
    assert_locked(&daemon, &["run"], &["DEVLOG_PASSPHRASE"]);
    assert!(
        !out_dir.exists(),
        "restore --to wrote {}",
        out_dir.display()
    );
    assert_eq!(backend.fingerprint(), remote_before, "the remote changed");
    assert_eq!(tree(&env.journal()), journal_before, "the journal changed");
    assert_eq!(state_files(&env), state_before, "the state dir changed");

    // A new machine with a wrong passphrase: nothing restored, nothing kept.
    let fresh = other_machine(&backend, Some(WRONG));
    assert_locked(
        &fresh.run(&["restore"]),
        &["restore"],
        &["DEVLOG_PASSPHRASE"],
    );
    assert!(
        tree(&fresh.journal()).is_empty(),
        "{:?}",
        tree(&fresh.journal())
    );
    assert_eq!(state_files(&fresh), BTreeMap::new(), "state written");

    // No passphrase at all: said, with both ways to give one.
    let bare = other_machine(&backend, None);
    for args in [&["restore"][..], &["verify"], &["push"]] {
        assert_locked(
            &bare.run(args),
            args,
            &["DEVLOG_PASSPHRASE", "passphrase_command"],
        );
    }
    assert!(tree(&bare.journal()).is_empty());
    assert_eq!(backend.fingerprint(), remote_before, "the remote changed");

    // A passphrase command (as a password manager's) works.
    let command = format!("passphrase_command = \"printf %s '{PASS}'\"\n");
    let managed = encrypted_env(&backend, TestEnv::new(), &command, None);
    let (report, _) = json(&managed, &["restore"], 0);
    assert_eq!(report["restored"], 1, "{report}");
    assert_eq!(
        std::fs::read(managed.journal().join("a.md")).unwrap(),
        b"pushed\n"
    );
}

#[test]
fn a_wrong_passphrase_leaves_no_state_behind_on_a_new_machine() {
    let (env, backend) = encrypted_world::<AzureBackend>();
    env.write_file("a.md", "pushed\n");
    json(&env, &["push"], 0);
    let remote_before = backend.fingerprint();
    // Every command that writes the state dir when it works, each on a machine of its own.
    let mut left = BTreeMap::new();
    for args in [&["push"][..], &["pull"], &["run"], &["restore"]] {
        let fresh = other_machine(&backend, Some(WRONG));
        fresh.write_file("new.md", "never pushed\n");
        let out = fresh.run_with_timeout(args, Duration::from_secs(30));
        assert_locked(&out, args, &["DEVLOG_PASSPHRASE"]);
        let state = state_files(&fresh);
        if !state.is_empty() {
            left.insert(args.join(" "), state.into_keys().collect::<Vec<_>>());
        }
    }
    assert_eq!(backend.fingerprint(), remote_before, "the remote changed");
    assert!(
        left.is_empty(),
        "state written before the passphrase was checked: {left:?}"
    );
}

// ---- 5. a tampered blob -------------------------------------------------------------------

/// Pushes and returns the one blob name the push added to the current view.
fn push_one(env: &TestEnv, backend: &AzureBackend) -> String {
    let before = backend.current();
    let (report, _) = json(env, &["push"], 0);
    assert_eq!(report["uploaded"], 1, "{report}");
    let added: Vec<String> = backend
        .current()
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    added[0].clone()
}

#[test]
fn a_tampered_or_swapped_blob_is_refused_and_never_written() {
    let (env, backend) = encrypted_world::<AzureBackend>();
    let (az, container) = (backend.az, backend.container.as_str());
    let mut stored = BTreeMap::new();
    for (rel, text) in [
        ("a.md", "alpha: the one copied over b\n"),
        ("b.md", "bravo: the one replaced by a's blob\n"),
        ("c.md", "charlie: untouched\n"),
        (
            "x.md",
            "x-ray: a byte flipped at rest, then uploaded with a fitting Content-MD5\n",
        ),
    ] {
        env.write_file(rel, text);
        stored.insert(rel, push_one(&env, &backend));
    }
    let want = tree(&env.journal());

    // (a) One byte flipped; the metadata (sealed MD5 and all) and a Content-MD5 that fits
    // the new bytes put back with it: only the encryption can tell.
    let mut bytes = az.get_blob(container, &stored["x.md"]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let metadata = az.blob_metadata(container, &stored["x.md"]);
    assert!(
        metadata.iter().any(|(k, _)| k == "devlogdsealed"),
        "{metadata:?}"
    );
    az.put_blob_with_metadata(container, &stored["x.md"], &bytes, &metadata);
    // (b) a.md's blob, bytes and metadata, copied over b.md's name.
    let bytes = az.get_blob(container, &stored["a.md"]).unwrap();
    let metadata = az.blob_metadata(container, &stored["a.md"]);
    az.put_blob_with_metadata(container, &stored["b.md"], &bytes, &metadata);

    let to = env.root().join("restored");
    let (report, out) = json(&env, &["restore", "--to", to.to_str().unwrap()], 1);
    let failed: Vec<String> = report["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|f| {
            let error = f["error"].as_str().unwrap_or_default();
            assert!(error.contains("damaged"), "{f}");
            f["path"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(failed, vec!["b.md", "x.md"], "{report}\n{}", out.stderr);
    let got = tree(&to);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec!["a.md", "c.md"],
        "{report}"
    );
    assert_eq!(got["a.md"], want["a.md"]);
    assert_eq!(got["c.md"], want["c.md"]);
    // Said to a person too.
    let text = env.run(&[
        "restore",
        "--to",
        env.root().join("again").to_str().unwrap(),
    ]);
    assert_ne!(text.code(), Some(0), "{text:?}");
    let said = format!("{}{}", text.stdout, text.stderr);
    for rel in ["b.md", "x.md"] {
        assert!(
            said.lines()
                .any(|l| l.contains(rel) && l.contains("damaged")),
            "{rel} not named as damaged:\n{said}"
        );
    }

    // A new machine never gets a's bytes under b's name, nor the flipped file.
    let fresh = other_machine(&backend, Some(PASS));
    let run = fresh.run(&["restore"]);
    assert_ne!(run.code(), Some(0), "{run:?}");
    let got = tree(&fresh.journal());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec!["a.md", "c.md"],
        "{run:?}"
    );
    assert_ne!(
        std::fs::read(fresh.journal().join("b.md")).ok(),
        Some(want["a.md"].clone())
    );
}

// ---- 6. switching a prefix ------------------------------------------------------------------

#[test]
fn a_prefix_is_never_switched_between_clear_and_encrypted() {
    // Stored in clear, then encryption turned on: refused, with the way out.
    let plain = TestEnv::new();
    let backend = AzureBackend::setup(&plain);
    let plain = env_for(&backend, plain, "");
    plain.write_file("a.md", "in clear\n");
    json(&plain, &["push"], 0);
    let before = backend.fingerprint();
    plain.write_config(&format!(
        "[remote]\nurl = \"{}\"\n\n{ENCRYPTED}",
        backend.remote_url()
    ));
    give_passphrase(&plain, PASS);
    plain.write_file("b.md", "would be encrypted\n");
    for args in [&["push"][..], &["restore", "--to", "elsewhere"]] {
        assert_refused(&plain.run(args), args, 2, &["new prefix"]);
    }
    assert_eq!(backend.fingerprint(), before, "the clear prefix changed");

    // Encrypted, then encryption turned off: refused, nothing uploaded in clear.
    let (env, backend) = encrypted_world::<AzureBackend>();
    env.write_file("a.md", "encrypted\n");
    json(&env, &["push"], 0);
    let before = backend.fingerprint();
    env.write_config(&format!("[remote]\nurl = \"{}\"\n", backend.remote_url()));
    env.write_file("b.md", "would go in clear\n");
    let restored = env.root().join("restored");
    for args in [
        &["push"][..],
        &["push", "--all"],
        &["restore", "--to", restored.to_str().unwrap()],
        &["run"],
    ] {
        let out = env.run_with_timeout(args, Duration::from_secs(30));
        assert_refused(&out, args, 2, &["[encryption] enabled = true"]);
    }
    assert_eq!(
        backend.fingerprint(),
        before,
        "something was uploaded in clear"
    );
    assert!(!restored.exists());
}

// ---- 7. the key commands --------------------------------------------------------------------

/// This machine's copy of the key blob (`index-*.key` beside the state index).
fn local_key_copy(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.state_home().join("devlog");
    let copies: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("index-") && name.ends_with(".key")
        })
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    copies[0].clone()
}

#[test]
fn key_passwd_export_and_import_keep_the_journal_recoverable() {
    const NEW: &str = "a whole new passphrase";
    let (env, backend) = encrypted_world::<AzureBackend>();
    env.write_file("a.md", "first\n");
    json(&env, &["push"], 0);
    let show = env.run(&["key", "show"]);
    show.assert_code(0);
    assert!(show.stdout.contains("key "), "{}", show.stdout);

    // A new passphrase: the old one no longer unlocks, the new one pushes and restores.
    env.run_with_env(
        &[("DEVLOG_NEW_PASSPHRASE", NEW)],
        &["key", "passwd"],
        Duration::from_secs(60),
    )
    .assert_code(0);
    assert_locked(&env.run(&["push"]), &["push"], &["DEVLOG_PASSPHRASE"]);
    give_passphrase(&env, NEW);
    env.write_file("b.md", "after the new passphrase\n");
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(report["uploaded"], 1, "{report}");
    let old = other_machine(&backend, Some(PASS));
    assert_locked(&old.run(&["restore"]), &["restore"], &["DEVLOG_PASSPHRASE"]);
    assert!(tree(&old.journal()).is_empty());
    let new = other_machine(&backend, Some(NEW));
    json(&new, &["restore"], 0);
    assert_eq!(tree(&new.journal()), tree(&env.journal()));

    // The remote's key blob lost: the next push puts this machine's copy back.
    let copy = local_key_copy(&env);
    backend.delete(KEY_BLOB);
    env.write_file("c.md", "after the key blob went missing\n");
    json(&env, &["push"], 0);
    assert_eq!(
        backend.get(KEY_BLOB),
        Some(std::fs::read(&copy).unwrap()),
        "the key blob put back"
    );

    // A recovery copy, private.
    let export = env.root().join("journal-key.backup");
    env.run(&["key", "export", export.to_str().unwrap()])
        .assert_code(0);
    let mode = std::fs::metadata(&export).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert_eq!(Some(std::fs::read(&export).unwrap()), backend.get(KEY_BLOB));

    // Both copies lost: nothing restores until the recovery copy is imported.
    backend.delete(KEY_BLOB);
    std::fs::remove_file(&copy).unwrap();
    let lost = other_machine(&backend, Some(NEW));
    let out = lost.run(&["restore"]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(tree(&lost.journal()).is_empty());
    assert!(
        out.stderr.contains("key import"),
        "the way back is not said: {}",
        out.stderr
    );
    env.run(&["key", "import", export.to_str().unwrap()])
        .assert_code(0);
    assert_eq!(backend.get(KEY_BLOB), Some(std::fs::read(&export).unwrap()));
    assert!(copy.exists(), "this machine's copy is back");
    json(&lost, &["restore"], 0);
    assert_eq!(tree(&lost.journal()), tree(&env.journal()));
    json(&env, &["push"], 0);
}
