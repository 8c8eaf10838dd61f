//! What devlogd shows a person: names that came from the remote or the disk escaped wherever
//! they are printed (control and invisible format characters), and a command whose stdout was
//! closed ending quietly. First, proofs that the hostile-service harness
//! (`tests/testsuite/common/hostile.rs`) does what the tests built on it rely on: forwarding to Azurite,
//! answering on its own, rewriting Azurite's answers.

use crate::common;

use common::daemon::{Daemon, status_as};
use common::hostile::{Action, Hostile, ListedBlob, Resp};
use common::{Azurite, RunOutput, TestEnv, unique_container, wait_for};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn hostile_proxy_forwards_a_push_to_azurite_and_records_its_put_blobs() {
    let az = Azurite::shared();
    let container = unique_container("hostile-proxy");
    az.create_container(&container);
    let proxy = Hostile::proxy(az.port(), |_| Action::Forward);
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        proxy.container_url(&container)
    ));
    env.write_file("a.md", b"alpha\n");
    env.write_file("dir/b c%.md", b"beta\n");

    env.run(&["push"]).assert_code(0);

    let requests = proxy.requests();
    let mut put: Vec<String> = requests
        .iter()
        .filter(|r| r.is_put_blob())
        .filter_map(|r| r.blob_name())
        .collect();
    put.sort();
    assert_eq!(put, ["a.md", "dir/b c%.md"], "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|r| r.is_put_blob() && r.body == b"alpha\n" && r.header("Content-MD5").is_some()),
        "{requests:#?}"
    );
    assert_eq!(
        az.get_blob(&container, "dir/b c%.md").as_deref(),
        Some(&b"beta\n"[..])
    );
}

#[test]
fn hostile_standalone_listing_is_what_restore_dry_run_shows() {
    let fake = Hostile::standalone(|req| {
        if !req.is_list() {
            return Action::Forward;
        }
        let prefix = req.query_param("prefix").unwrap_or_default();
        let blobs: Vec<ListedBlob> = [
            ListedBlob::of("notes/crafted.md", b"crafted\n"),
            ListedBlob::of("amp & <lt>.md", b"x"),
        ]
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .collect();
        Action::Reply(Resp::list(&blobs))
    });
    let env = TestEnv::new().with_sas(Azurite::shared().account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        fake.container_url("journal")
    ));

    let out = env.run(&["restore", "--dry-run"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("would restore notes/crafted.md")
            && out.stdout.contains("would restore amp & <lt>.md"),
        "{out:?}"
    );
    assert!(fake.requests().iter().any(|r| r.is_list()));
    assert!(!env.journal().join("notes").exists());
}

#[test]
fn hostile_rewrite_of_a_get_blob_body_is_caught_by_restore() {
    let az = Azurite::shared();
    let container = unique_container("hostile-rewrite");
    az.create_container(&container);
    az.put_blob(&container, "n.md", b"the real bytes\n");
    let proxy = Hostile::proxy(az.port(), |req| {
        if req.is_get_blob() {
            Action::Rewrite(Box::new(|resp: Resp| {
                resp.body(b"the fake bytes\n".to_vec())
            }))
        } else {
            Action::Forward
        }
    });
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        proxy.container_url(&container)
    ));

    let out = env.run(&["restore"]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains("n.md") || out.stderr.contains("n.md"),
        "{out:?}"
    );
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("Content-MD5"),
        "{out:?}"
    );
    assert!(!env.journal().join("n.md").exists());
    assert!(proxy.requests().iter().any(|r| r.is_get_blob()));
}

#[test]
fn hostile_repeat_body_streams_a_huge_answer_with_its_whole_length() {
    use std::io::Write;
    const MIB: usize = 1024 * 1024;
    let fake = Hostile::standalone(|req| {
        if req.is_get_blob() {
            Action::Reply(Resp::blob(&vec![7u8; MIB], None).repeat_body(64))
        } else {
            Action::Forward
        }
    });
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", fake.port())).expect("connecting");
    write!(
        conn,
        "GET /devstoreaccount1/c/big.md HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("sending the request");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).expect("reading the answer");
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer head");
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", 64 * MIB)),
        "{head}"
    );
    assert!(!head.contains("x-hostile"), "{head}");
    assert_eq!(answer.len() - end - 4, 64 * MIB);
    assert!(fake.requests()[0].is_get_blob());
}

#[test]
fn hostile_req_helpers_decode_names_and_queries() {
    use common::hostile::Req;
    let req = |method: &str, path: &str, query: &str| Req {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: vec![("x-ms-version".into(), "2025-11-05".into())],
        body: Vec::new(),
    };
    let list = req(
        "GET",
        "/devstoreaccount1/c",
        "restype=container&comp=list&prefix=.devlog-history%2Fa%20b%2F",
    );
    assert!(list.is_list() && !list.is_get_blob());
    assert_eq!(list.blob_name(), None);
    assert_eq!(list.container().as_deref(), Some("c"));
    assert_eq!(
        list.query_param("prefix").as_deref(),
        Some(".devlog-history/a b/")
    );
    assert_eq!(list.query_param("marker"), None);
    assert_eq!(list.header("X-MS-Version"), Some("2025-11-05"));
    let get = req("GET", "/devstoreaccount1/c/d%2Fe/%E2%80%AEx%25.md", "");
    assert!(get.is_get_blob() && !get.is_list());
    assert_eq!(get.blob_name().as_deref(), Some("d/e/\u{202e}x%.md"));
    let put = req(
        "PUT",
        "/devstoreaccount1/c/n.md",
        "comp=block&blockid=QQ%3D%3D",
    );
    assert!(put.is_put_block() && !put.is_put_blob());
    assert_eq!(put.query_param("blockid").as_deref(), Some("QQ=="));
}

/// A name that shows other text than it holds: a right-to-left override and a zero-width space.
const EVIL: &str = "evil\u{202e}dm.exe\u{200b}.md";
/// How every human output must show it.
const SHOWN: &str = "evil\\u{202e}dm.exe\\u{200b}.md";

/// Both streams show [`EVIL`] escaped, and no format character reaches them raw.
fn assert_escaped(what: &str, out: &RunOutput) {
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains(SHOWN),
        "{what}: the escaped name is not shown:\n{all}"
    );
    assert!(
        !all.contains('\u{202e}') && !all.contains('\u{200b}'),
        "{what}: a raw format character reached the terminal:\n{all}"
    );
}

fn directory_remote(env: &TestEnv) -> PathBuf {
    let remote = env.root().join("remote");
    std::fs::create_dir_all(&remote).expect("creating the remote directory");
    env.write_config(&format!(
        "[remote]\nurl = \"file://{}\"\n",
        remote.display()
    ));
    remote
}

#[test]
fn a_name_with_bidi_and_zero_width_characters_is_shown_escaped_by_every_command() {
    let env = TestEnv::new();
    let remote = directory_remote(&env);
    env.write_file(EVIL, b"v1\n");

    assert_escaped(
        "push --dry-run",
        env.run(&["push", "--dry-run"]).assert_code(0),
    );
    env.run(&["push"]).assert_code(0);
    env.write_file(EVIL, b"v2, replacing v1\n");
    env.run(&["push"]).assert_code(0);
    assert_escaped("history", env.run(&["history", EVIL]).assert_code(0));

    env.write_file(EVIL, b"a local edit\n");
    assert_escaped("verify", &env.run(&["verify"]));

    let to = env.root().join("restored");
    let to = to.to_str().expect("a UTF-8 temp path");
    assert_escaped(
        "restore --dry-run",
        env.run(&["restore", "--dry-run", "--to", to])
            .assert_code(0),
    );

    // Another writer's conflict copy of it, its host name holding an override too.
    let copy = "evil\u{202e}dm.exe\u{200b}.conflict-h\u{2067}ost-20260101T000000Z.md";
    std::fs::write(remote.join(copy), b"theirs\n").expect("planting a conflict copy");
    let out = env.run(&["conflicts"]);
    assert_escaped("conflicts", &out);
    assert!(out.stdout.contains("h\\u{2067}ost"), "{out:?}");
}

#[test]
fn ctl_status_and_push_show_a_failing_name_escaped() {
    let az = Azurite::shared();
    let container = unique_container("display-failing");
    az.create_container(&container);
    // The service refuses this one blob for good (a 400 is not retried within a push).
    let proxy = Hostile::proxy(az.port(), |req| {
        if req.is_put_blob() && req.blob_name().as_deref() == Some(EVIL) {
            Action::Reply(Resp::error(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            ))
        } else {
            Action::Forward
        }
    });
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        proxy.container_url(&container)
    ));
    env.write_file(EVIL, b"refused\n");
    env.write_file("fine.md", b"fine\n");

    let out = env.run(&["push"]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert_escaped("push", &out);

    let _daemon = Daemon::start(&env);
    wait_for(
        Duration::from_secs(30),
        "the failing path in the status",
        || {
            let s = status_as(&env, None);
            (s.failed_paths == 1).then_some(())
        },
    );
    let out = env.run(&["ctl", "status"]);
    assert_escaped("ctl status", &out);
    assert!(out.stdout.contains("not pushed"), "{out:?}");
}

/// Runs `cmd` with its stdout a pipe whose reading end is already closed.
fn with_stdout_closed(mut cmd: Command) -> (std::process::ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the command");
    drop(child.stdout.take());
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = wait_for(Duration::from_secs(60), "the command to end", || {
        child.try_wait().ok().flatten()
    });
    (status, stderr)
}

/// Ended like `cat` on a closed pipe: by SIGPIPE, without a word.
fn assert_quiet_end(what: &str, (status, stderr): (std::process::ExitStatus, String)) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: noise on a closed stdout ({status}):\n{stderr}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "{what}: {status}\n{stderr}"
    );
}

#[test]
fn a_closed_stdout_ends_ctl_status_history_and_devlog_list_quietly() {
    let env = TestEnv::new();
    directory_remote(&env);
    let mut new = env.devlog();
    new.args(["new", "-m", "an entry to list"]);
    let made = new.output().expect("running devlog new");
    assert!(made.status.success(), "{made:?}");
    env.write_file("notes.md", b"v1\n");
    env.run(&["push"]).assert_code(0);

    let mut history = env.devlogd();
    history.args(["history", "notes.md"]);
    assert_quiet_end("devlogd history", with_stdout_closed(history));

    let mut list = env.devlog();
    list.arg("list");
    assert_quiet_end("devlog list", with_stdout_closed(list));

    let _daemon = Daemon::start(&env);
    let mut status = env.devlogd();
    status.args(["ctl", "status"]);
    assert_quiet_end("devlogd ctl status", with_stdout_closed(status));
}

/// Names and writer ids that come down from a hostile Azure endpoint (a crafted listing and
/// Get Blob Properties) are shown escaped by restore, history and conflicts.
#[test]
fn names_and_writers_from_a_hostile_azure_listing_are_shown_escaped() {
    use md5::{Digest, Md5};
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let bytes = b"theirs\n";
    let md5 = common::hostile::md5_of(bytes);
    // A writer mark that checks out (MD5 and name tag right), its writer id an override.
    let mark = format!(
        "w\u{202e}x:{}:{}",
        hex(&md5),
        &hex(&Md5::digest(EVIL.as_bytes()))[..16]
    );
    let mut current = ListedBlob::of(EVIL, bytes);
    current.metadata = vec![("devlogdwriter".into(), mark.clone())];
    let mut version = ListedBlob::of(
        &format!(".devlog-history/{EVIL}/20260101T000000.000000000Z-w\u{202e}x"),
        bytes,
    );
    version.metadata = current.metadata.clone();
    let copy = ListedBlob::of(
        "evil\u{202e}dm.exe\u{200b}.conflict-h\u{2067}ost-20260101T000000Z.md",
        bytes,
    );
    let listing = [current, version, copy];
    let fake = Hostile::standalone(move |req| {
        if req.is_list() {
            let prefix = req.query_param("prefix").unwrap_or_default();
            let page: Vec<ListedBlob> = listing
                .iter()
                .filter(|b| b.name.starts_with(&prefix))
                .cloned()
                .collect();
            return Action::Reply(Resp::list(&page));
        }
        if req.is_head() && req.blob_name().as_deref() == Some(EVIL) {
            return Action::Reply(
                Resp::blob(bytes, Some(md5)).header("x-ms-meta-devlogdwriter", &mark),
            );
        }
        Action::Forward
    });
    let env = TestEnv::new().with_sas(Azurite::shared().account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        fake.container_url("journal")
    ));
    env.write_file(EVIL, b"ours\n");

    let to = env.root().join("restored");
    let to = to.to_str().expect("a UTF-8 temp path");
    assert_escaped(
        "restore --dry-run",
        env.run(&["restore", "--dry-run", "--to", to])
            .assert_code(0),
    );
    let out = env.run(&["history", EVIL]);
    assert_escaped("history", &out);
    assert!(out.stdout.contains("w\\u{202e}x"), "{out:?}");
    let out = env.run(&["conflicts"]);
    assert_escaped("conflicts", &out);
    assert!(out.stdout.contains("h\\u{2067}ost"), "{out:?}");
}

/// A journal entry (it may have come down from the remote by a restore) whose title and tag
/// hold invisible format characters: `devlog list` shows them escaped.
#[test]
fn devlog_list_shows_titles_and_tags_escaped() {
    let env = TestEnv::new();
    directory_remote(&env);
    let made = env
        .devlog()
        .args([
            "new",
            "-m",
            "meeting \u{202e}evil\u{200b} notes",
            "-t",
            "t\u{2066}ag",
        ])
        .output()
        .expect("running devlog new");
    assert!(made.status.success(), "{made:?}");
    let out = env
        .devlog()
        .arg("list")
        .output()
        .expect("running devlog list");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("meeting \\u{202e}evil\\u{200b} notes") && stdout.contains("t\\u{2066}ag"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\u{202e}') && !stdout.contains('\u{2066}'),
        "{stdout}"
    );
}
