//! What comes down from the remote is untrusted (issue 22): names a co-writer plants in
//! the history area, the clocks of other writers and of this machine, bytes damaged at rest,
//! retries that must not multiply history copies. Driven through the real `devlogd` binary
//! against Azurite and the directory remote; the remote side is written here by a fake
//! co-writer with raw requests, never through devlogd's own code.

use crate::common;

use common::hostile::{self, Action, Hostile, Resp};
use common::{Azurite, RunOutput, TestEnv, json, unique_container};
use std::path::{Path, PathBuf};
use std::time::Duration;

const HISTORY: &str = ".devlog-history";
/// Debian's libfaketime (installed by scripts/test).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const DAY_NS: i128 = 86_400 * 1_000_000_000;

/// The remote side as a co-writer sees it.
trait Backend: Sized {
    fn setup(env: &TestEnv) -> Self;
    fn remote_url(&self) -> String;
    fn sas(&self) -> Option<String>;
    /// Every blob name, history included.
    fn names(&self) -> Vec<String>;
    fn read(&self, name: &str) -> Option<Vec<u8>>;
    /// A writer with its own clock replaces `name` with `bytes`: it keeps the version being
    /// replaced (with its write time) as a history name stamped `stamp`, and writes the new
    /// one claiming it was written at `claimed_ns` (metadata; the directory remote's mtime).
    fn replace_as_skewed_writer(&self, name: &str, bytes: &[u8], stamp: &str, claimed_ns: i128);
    /// Put a blob as another writer, claiming it was written at `claimed_ns`.
    fn plant(&self, name: &str, bytes: &[u8], claimed_ns: i128);
}

struct AzureBackend {
    az: &'static Azurite,
    container: String,
    sas: String,
}

impl AzureBackend {
    fn with_sas(sas: String) -> Self {
        let az = Azurite::shared();
        let container = unique_container("untrusted");
        az.create_container(&container);
        AzureBackend { az, container, sas }
    }

    /// `PUT` the blob at `encoded` (a path already percent-encoded, sent as it is) with
    /// `headers`; returns the status.
    fn raw_put(&self, encoded: &str, bytes: &[u8], headers: &[(&str, String)]) -> u16 {
        let url = format!(
            "{}/{encoded}?{}",
            self.az.container_url(&self.container),
            self.az.account_sas()
        );
        let mut request = self
            .az
            .agent()
            .put(&url)
            .header("x-ms-blob-type", "BlockBlob")
            .header("x-ms-version", "2021-08-06");
        for (k, v) in headers {
            request = request.header(*k, v.as_str());
        }
        request
            .send(bytes)
            .unwrap_or_else(|e| panic!("PUT {encoded}: {e}"))
            .status()
            .as_u16()
    }
}

impl Backend for AzureBackend {
    fn setup(_: &TestEnv) -> Self {
        Self::with_sas(Azurite::shared().account_sas())
    }
    fn remote_url(&self) -> String {
        self.az.container_url(&self.container)
    }
    fn sas(&self) -> Option<String> {
        Some(self.sas.clone())
    }
    fn names(&self) -> Vec<String> {
        self.az
            .list_blobs(&self.container)
            .into_iter()
            .map(|b| b.name)
            .collect()
    }
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.az.get_blob(&self.container, name)
    }
    fn replace_as_skewed_writer(&self, name: &str, bytes: &[u8], stamp: &str, claimed_ns: i128) {
        // Copy Blob keeps the source's metadata (its write time), as devlogd's own does.
        let kept = format!("{HISTORY}/{name}/{stamp}-skewed");
        let source = format!(
            "{}?{}",
            self.az.blob_url(&self.container, name),
            self.az.account_sas()
        );
        let url = format!(
            "{}?{}",
            self.az.blob_url(&self.container, &kept),
            self.az.account_sas()
        );
        let status = self
            .az
            .agent()
            .put(&url)
            .header("x-ms-copy-source", source.as_str())
            .header("x-ms-version", "2021-08-06")
            .send_empty()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 202, "copy into history");
        self.plant(name, bytes, claimed_ns);
    }
    fn plant(&self, name: &str, bytes: &[u8], claimed_ns: i128) {
        let status = self.raw_put(
            &common::encode_blob_path(name),
            bytes,
            &[
                ("Content-MD5", common::md5_b64(bytes)),
                ("x-ms-meta-devlogdwritten", claimed_ns.to_string()),
            ],
        );
        assert_eq!(status, 201, "PUT {name}");
    }
}

struct DirectoryBackend {
    dir: PathBuf,
}

impl DirectoryBackend {
    fn set_mtime(path: &Path, ns: i128) {
        let when = std::time::UNIX_EPOCH + Duration::from_nanos(ns as u64);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_times(std::fs::FileTimes::new().set_modified(when))
            .unwrap();
    }
}

impl Backend for DirectoryBackend {
    fn setup(env: &TestEnv) -> Self {
        let dir = env.root().join("mirror");
        std::fs::create_dir_all(&dir).unwrap();
        DirectoryBackend { dir }
    }
    fn remote_url(&self) -> String {
        format!("file://{}", self.dir.display())
    }
    fn sas(&self) -> Option<String> {
        None
    }
    fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    stack.push(path);
                } else {
                    let name = path.strip_prefix(&self.dir).unwrap();
                    out.push(name.to_string_lossy().into_owned());
                }
            }
        }
        out.retain(|n| !n.starts_with(".devlogd-tmp/") && n != ".devlogd.lock");
        out.sort();
        out
    }
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(name)).ok()
    }
    fn replace_as_skewed_writer(&self, name: &str, bytes: &[u8], stamp: &str, claimed_ns: i128) {
        let current = self.dir.join(name);
        let kept = self.dir.join(format!("{HISTORY}/{name}/{stamp}-skewed"));
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        std::fs::copy(&current, &kept).unwrap();
        let written = std::fs::metadata(&current).unwrap().modified().unwrap();
        let written = written.duration_since(std::time::UNIX_EPOCH).unwrap();
        Self::set_mtime(&kept, written.as_nanos() as i128);
        self.plant(name, bytes, claimed_ns);
    }
    fn plant(&self, name: &str, bytes: &[u8], claimed_ns: i128) {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = path.with_extension("planting");
        std::fs::write(&tmp, bytes).unwrap();
        Self::set_mtime(&tmp, claimed_ns);
        std::fs::rename(&tmp, &path).unwrap();
    }
}

/// A journal configured for the backend.
fn world<B: Backend>() -> (TestEnv, B) {
    let env = TestEnv::new();
    let backend = B::setup(&env);
    let env = match backend.sas() {
        Some(sas) => env.with_sas(sas),
        None => env,
    };
    env.write_config(&format!("[remote]\nurl = \"{}\"\n", backend.remote_url()));
    (env, backend)
}

fn now_ns() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

fn rfc3339(ns: i128) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A history stamp as older releases named versions (`20261129T090539.123456789Z`).
fn stamp(ns: i128) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// Wait (polling the clock) until the wall clock is past `ns`: service times have whole
/// seconds on Azure, so the steps of a timeline must be seconds apart.
fn clock_past(ns: i128) {
    common::wait_for(Duration::from_secs(10), "the clock to move on", || {
        (now_ns() > ns).then_some(())
    });
}

fn history_of<B: Backend>(backend: &B, path: &str) -> Vec<String> {
    let under = format!("{HISTORY}/{path}/");
    backend
        .names()
        .into_iter()
        .filter(|n| n.starts_with(&under))
        .collect()
}

// --- A: no request for a name with `..` segments --------------------------------------

#[test]
fn prune_deletes_nothing_outside_the_history_area_whatever_a_listed_name_says() {
    let (env, backend) = world::<AzureBackend>();
    let az = backend.az;
    let other = unique_container("victim");
    az.create_container(&other);
    let victim = "20200101T000000.000000000Z-old";
    az.put_blob(&other, victim, b"another container's blob");
    // A co-writer plants a version name whose `..` segments a URL would normalise into the
    // other container (Azurite stores the name literally).
    let planted = format!("{HISTORY}/../../{other}/{victim}");
    let encoded = format!("{HISTORY}/%2E%2E/%2E%2E/{other}/{victim}");
    assert_eq!(backend.raw_put(&encoded, b"planted", &[]), 201);
    assert!(
        backend.names().contains(&planted),
        "stored literally: {:?}",
        backend.names()
    );
    env.write_file("a.md", "one");
    json(&env, &["push"], 0);
    let out = env.run(&["prune", "--json"]);
    assert!(
        az.get_blob(&other, victim).is_some(),
        "prune deleted a blob in another container\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(backend.names().contains(&planted), "nor the planted name");
    out.assert_code(0);
    // History of that name is no request either.
    let out = env.run(&["history", &format!("../../{other}")]);
    assert!(az.get_blob(&other, victim).is_some());
    assert!(!out.stdout.contains("another container"), "{}", out.stdout);
}

// --- B: history time comes from the service -------------------------------------------

fn prune_keeps_versions_a_skewed_writer_dates_long_ago<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file("a.md", "one");
    json(&env, &["push"], 0);
    env.write_file("a.md", "two");
    json(&env, &["push"], 0);
    // Replaced a minute ago by a writer whose clock is 40 days slow (and, for another
    // file, 40 days fast): its stamp and write time say 40 days ago.
    let slow = now_ns() - 40 * DAY_NS;
    backend.replace_as_skewed_writer("a.md", b"three", &stamp(slow), slow);
    let fast = now_ns() + 40 * DAY_NS;
    backend.plant("b.md", b"b one", fast);
    backend.replace_as_skewed_writer("b.md", b"b two", &stamp(fast), fast);
    let before: Vec<String> = [history_of(&backend, "a.md"), history_of(&backend, "b.md")].concat();
    assert_eq!(before.len(), 3, "{before:?}");
    let (report, _) = json(&env, &["prune"], 0);
    assert_eq!(report["removed"], 0, "{report}");
    let after: Vec<String> = [history_of(&backend, "a.md"), history_of(&backend, "b.md")].concat();
    assert_eq!(after, before, "fresh versions are kept: {report}");
}

fn restore_at_picks_the_version_current_then_by_the_services_clock<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file("a.md", "one");
    let t0 = now_ns();
    json(&env, &["push"], 0);
    clock_past(t0 + 4_000_000_000);
    // A writer 40 days slow replaces it: by its clock, "one" was replaced (and "two"
    // written) 40 days ago.
    let slow = now_ns() - 40 * DAY_NS;
    backend.replace_as_skewed_writer("a.md", b"two", &stamp(slow), slow);
    let at = rfc3339(t0 + 1_000_000_000);
    let to = env.root().join("as-of");
    let out = env.run(&["restore", "--at", &at, "--to", to.to_str().unwrap()]);
    out.assert_code(0);
    assert_eq!(
        std::fs::read(to.join("a.md")).unwrap(),
        b"one",
        "the version current at {at}\n{}",
        out.stdout
    );
    let now = env.root().join("now");
    env.run(&["restore", "--to", now.to_str().unwrap()])
        .assert_code(0);
    assert_eq!(std::fs::read(now.join("a.md")).unwrap(), b"two");
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `devlogd restore --at AT --to <dir>`: the directory restored into.
fn restore_at(env: &TestEnv, at: i128, into: &str) -> PathBuf {
    let to = env.root().join(into);
    let at = rfc3339(at);
    let out = env.run(&["restore", "--at", &at, "--to", to.to_str().unwrap()]);
    out.assert_code(0);
    to
}

fn restore_at_ignores_a_history_copy_planted_with_an_old_write_time<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file("notes.md", "ours");
    json(&env, &["push"], 0);
    let pushed = now_ns();
    // Service times have whole seconds: `at` is a second after ours was stored, and the
    // copy is planted a second after `at`.
    let at = pushed + 1_500_000_000;
    clock_past(at + 1_500_000_000);
    backend.plant(&format!("{HISTORY}/notes.md/v-x-y"), b"planted", 0);
    let to = restore_at(&env, at, "as-of");
    assert_eq!(
        read_text(&to.join("notes.md")).as_deref(),
        Some("ours"),
        "the version current at {}",
        rfc3339(at)
    );
}

fn restore_at_ignores_an_overwrite_claiming_an_old_write_time<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file("notes.md", "ours one");
    env.write_file("other.md", "other");
    json(&env, &["push"], 0);
    let first = now_ns() + 1_500_000_000;
    clock_past(first + 1_500_000_000);
    env.write_file("notes.md", "ours two");
    json(&env, &["push"], 0);
    let second = now_ns() + 1_500_000_000;
    clock_past(second + 1_500_000_000);
    // A co-writer overwrites it, keeping no copy, and claims it was written at 0.
    backend.plant("notes.md", b"theirs", 0);
    let to = restore_at(&env, first, "first");
    assert_eq!(std::fs::read(to.join("notes.md")).unwrap(), b"ours one");
    // "ours two" was current then and is gone: theirs is not it, so nothing is restored.
    let to = restore_at(&env, second, "second");
    assert_eq!(std::fs::read(to.join("other.md")).unwrap(), b"other");
    assert_eq!(
        read_text(&to.join("notes.md")),
        None,
        "a version written after {} restored as current then",
        rfc3339(second)
    );
    let to = restore_at(&env, now_ns(), "now");
    assert_eq!(std::fs::read(to.join("notes.md")).unwrap(), b"theirs");
}

fn prune_refuses_when_this_machines_clock_is_40_days_ahead<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file("a.md", "one");
    json(&env, &["push"], 0);
    env.write_file("a.md", "two");
    json(&env, &["push"], 0);
    let kept = history_of(&backend, "a.md");
    assert_eq!(kept.len(), 1);
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install libfaketime (scripts/test does)"
    );
    let out = env
        .devlogd()
        .args(["prune"])
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", "+40d")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("this machine's clock is 57600 minutes off the service's"),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(history_of(&backend, "a.md"), kept, "nothing pruned");
}

// --- E: retries that cannot multiply ---------------------------------------------------

#[test]
fn a_delete_retried_without_delete_permission_keeps_one_history_copy() {
    let az = Azurite::shared();
    let no_delete = common::account_sas_for(common::ACCOUNT_KEY, "rwlacup", "2099-01-01T00:00:00Z");
    let backend = AzureBackend::with_sas(no_delete);
    let env = TestEnv::new().with_sas(backend.sas.clone());
    env.write_config(&format!("[remote]\nurl = \"{}\"\n", backend.remote_url()));
    env.write_file("a.md", "one");
    env.write_file("b.md", "two");
    json(&env, &["push"], 0);
    std::fs::remove_file(env.journal().join("a.md")).unwrap();
    for _ in 0..3 {
        let out = env.run(&["push"]);
        assert_ne!(out.code(), Some(0), "the delete is refused");
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains("the SAS lacks delete permission (sp=rwlacup)"),
            "{said}"
        );
    }
    // The daemon side reads the SAS and refuses before any copy; a copy made by a delete
    // the service refused is made once (`v-<etag>` names, tests/testsuite/remote_contract.rs).
    assert!(
        history_of(&backend, "a.md").len() <= 1,
        "at most one copy of the version, however often the delete is tried: {:?}",
        backend.names()
    );
    assert!(az.get_blob(&backend.container, "a.md").is_some());
}

// --- D: damaged at rest is corrupt, not another writer's version -----------------------

#[test]
fn a_flipped_byte_in_the_directory_remote_is_corrupt_and_the_next_edit_repairs_it() {
    let (env, backend) = world::<DirectoryBackend>();
    env.write_file("a.md", "hello world\n");
    json(&env, &["push"], 0);
    let stored = backend.dir.join("a.md");
    // Bit rot: one byte changes in place (same inode, extended attributes and mtime).
    let mtime = std::fs::metadata(&stored).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[0] ^= 0x20;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&stored)
        .unwrap();
    std::io::Write::write_all(&mut file, &bytes).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    drop(file);
    let (report, out) = json(&env, &["verify"], 1);
    assert_eq!(report["corrupt"], serde_json::json!(["a.md"]), "{report}");
    assert_eq!(report["differs"], serde_json::json!([]), "{report}");
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    let text = env.run(&["verify"]);
    assert!(text.stdout.contains("corrupt"), "{}", text.stdout);
    drop(out);
    let to = env.root().join("restored");
    let out = env.run(&["restore", "--to", to.to_str().unwrap()]);
    assert_ne!(out.code(), Some(0));
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(
            "the stored copy of a.md is damaged: its bytes no longer match the MD5 written with it"
        ),
        "{said}"
    );
    assert!(!to.join("a.md").exists(), "a damaged copy is not restored");
    // The user's next edit is ours to push, not a conflict.
    env.write_file("a.md", "hello again\n");
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(report["uploaded"], 1, "{report}");
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    assert_eq!(backend.read("a.md").unwrap(), b"hello again\n");
    assert!(
        backend.names().iter().all(|n| !n.contains("conflict")),
        "{:?}",
        backend.names()
    );
    json(&env, &["verify"], 0);
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod azure {
            use super::*;
            $(#[test] fn $name() { super::$name::<AzureBackend>(); })*
        }
        mod directory {
            use super::*;
            $(#[test] fn $name() { super::$name::<DirectoryBackend>(); })*
        }
    };
}

both!(
    prune_keeps_versions_a_skewed_writer_dates_long_ago,
    restore_at_picks_the_version_current_then_by_the_services_clock,
    prune_refuses_when_this_machines_clock_is_40_days_ahead,
    restore_at_ignores_a_history_copy_planted_with_an_old_write_time,
    restore_at_ignores_an_overwrite_claiming_an_old_write_time,
);

// --- F, G: what a hostile or skewed service answers ------------------------------------

/// A journal whose remote is the fake service's container, with a SAS (the fake checks none).
fn env_for_fake(service: &Hostile) -> TestEnv {
    let env = TestEnv::new().with_sas(Azurite::shared().account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        service.container_url("fake")
    ));
    env
}

#[test]
fn a_clock_20_minutes_off_is_named_instead_of_the_key() {
    // Azure refuses a request dated too far from its own clock; its Date is 20 minutes
    // behind this machine's.
    let service = Hostile::standalone(|_| {
        Action::Reply(
            Resp::error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Request date header too old: 'x'",
            )
            .header(
                "Date",
                &hostile::rfc1123(time::OffsetDateTime::now_utc() - time::Duration::minutes(20)),
            ),
        )
    });
    let env = env_for_fake(&service);
    env.write_file("a.md", "one");
    let said = "this machine's clock is 20 minutes off the service's (ahead); correct it (timedatectl / NTP)";
    let check = |out: &RunOutput, what: &str| {
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(text.contains(said), "{what}: {text}");
        assert!(!text.contains("rotated"), "{what}: {text}");
        assert!(
            !text.contains("check that the SAS token is valid"),
            "{what}: {text}"
        );
    };
    let out = env.run(&["push"]);
    check(&out, "push");
    out.assert_code(4);
    let to = env.root().join("restored");
    let out = env.run(&["restore", "--to", to.to_str().unwrap()]);
    check(&out, "restore");
    out.assert_code(4);
    let out = env.run(&["config", "check", "--online"]);
    check(&out, "config check --online");
    let _daemon = common::daemon::Daemon::start(&env);
    let status = common::wait_for(
        Duration::from_secs(30),
        "the status to name the clock",
        || {
            let s = common::daemon::status_as(&env, None);
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(said))
                .then_some(s)
        },
    );
    assert!(!status.to_string().contains("rotated"), "{status}");
}

#[test]
fn a_malformed_listing_page_is_one_bounded_escaped_line() {
    let junk = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs><Blob><Name>\u{1b}[2J\u{202e}evil{}",
        "<Blob>".repeat(5_000)
    );
    let service = Hostile::standalone(move |req| {
        Action::Reply(if req.is_list() {
            Resp::new(200)
                .header("Content-Type", "application/xml")
                .body(junk.clone())
        } else {
            Resp::error(404, "BlobNotFound", "The specified blob does not exist.")
        })
    });
    let env = env_for_fake(&service);
    let to = env.root().join("restored");
    let out = env.run(&["restore", "--to", to.to_str().unwrap()]);
    assert_ne!(out.code(), Some(0));
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("listing page"), "{text}");
    assert!(!text.contains('\u{1b}'), "escaped: {text:?}");
    assert!(!text.contains('\u{202e}'), "escaped: {text:?}");
    assert!(!text.contains("<Blob><Blob>"), "never the raw body: {text}");
    for line in text.lines() {
        assert!(line.chars().count() < 400, "bounded: {line}");
    }
}
