//! The daemon's side of "what comes down from the remote is untrusted" (issue 22): the
//! mass-delete guard over time and a replaced root, "backed up" checked against the
//! remote, permission refusals and reloads, bounds on settings, a dead worker, and an
//! index written by a newer devlogd. Each drives the real `devlogd` binary, against the
//! directory remote and Azure (Azurite) where the bullet applies to both.

use crate::common;

use common::backend::{AzureBackend, Backend, DirectoryBackend, HISTORY, world_with};
use common::daemon::{Daemon, running, settled, status, verdict};
use common::{Azurite, TestEnv, poll_until, unique_container, wait_for};
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(90);

// --- A: the mass-delete guard counts over time ----------------------------------------------

fn a_slow_mass_delete_is_held<B: Backend>() {
    let (env, backend) = world_with::<B>("");
    for i in 0..100 {
        env.write_file(&format!("e/{i:03}.md"), format!("entry {i}"));
    }
    let daemon = running(&env, SETTLE);
    assert_eq!(backend.current().len(), 100);
    // A sync client freeing space, one file every 0.3 s: each pass sees only a few.
    for i in 0..100 {
        std::fs::remove_file(env.journal().join(format!("e/{i:03}.md"))).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let held = poll_until(SETTLE, || {
        let s = status(&env);
        (s.held_deletes > 0 && settled(&env)).then_some(s)
    });
    let left = backend.current().len();
    let s = held.unwrap_or_else(|| {
        panic!(
            "the deletes were not held ({left} left): {}\nlog: {}",
            status(&env),
            daemon.log_text()
        )
    });
    assert!(left >= 50, "half of the view stays: {left} left");
    assert_eq!(s.held_deletes, left as u64, "{s}");
    let text = verdict(&s);
    assert!(text.contains("held by the mass-delete guard"), "{text}");
    assert!(!text.contains("backed up"), "{text}");
    // Every remote delete is counted and logged, one line each.
    let deleted = s["files_deleted"].as_u64().unwrap();
    assert_eq!(deleted, 100 - left as u64, "{s}");
    let lines = daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("deleted from the remote"))
        .count();
    assert_eq!(lines as u64, deleted, "{}", daemon.log_text());
    let human = env.run(&["ctl", "status"]);
    assert!(human.stdout.contains("deletes HELD"), "{}", human.stdout);
    assert!(human.stdout.contains(" deleted, "), "{}", human.stdout);
    // A restart does not release them.
    drop(daemon);
    let daemon = running(&env, SETTLE);
    let s = status(&env);
    assert_eq!(s.held_deletes, left as u64, "{s}");
    assert_eq!(backend.current().len(), left);
    drop(daemon);
}

fn a_root_replaced_by_a_placeholder_is_held<B: Backend>() {
    let (env, backend) = world_with::<B>("");
    for i in 0..40 {
        env.write_file(&format!("notes/{i:02}.md"), format!("note {i}"));
    }
    let daemon = running(&env, SETTLE);
    assert_eq!(backend.current().len(), 40);
    // The volume is unmounted: its mount point is an empty directory, with one file in it.
    let aside = env.home().join("unmounted");
    std::fs::rename(env.journal(), &aside).unwrap();
    std::fs::create_dir(env.journal()).unwrap();
    env.write_file("PLACEHOLDER.md", b"the volume is not mounted");
    let held = poll_until(SETTLE, || {
        let s = status(&env);
        (s.held_deletes == 40 && settled(&env)).then_some(s)
    });
    let s = held.unwrap_or_else(|| {
        panic!(
            "not held: {}\nremote: {:?}\nlog: {}",
            status(&env),
            backend.current(),
            daemon.log_text()
        )
    });
    let current = backend.current();
    assert_eq!(
        current.iter().filter(|n| n.starts_with("notes/")).count(),
        40,
        "{current:?}"
    );
    let text = verdict(&s);
    assert!(!text.starts_with("All"), "{text}");
    assert!(text.contains("held by the mass-delete guard"), "{text}");
    assert_eq!(s["files_deleted"].as_u64(), Some(0), "{s}");
}

// --- B: "backed up" is checked against the remote --------------------------------------------

fn a_blob_deleted_behind_the_daemons_back_comes_back<B: Backend>() {
    let (env, backend) = world_with::<B>("rescan_interval_s = 10\n");
    env.write_file("a.md", b"alpha");
    env.write_file("b.md", b"bravo");
    let daemon = running(&env, SETTLE);
    backend.delete("a.md");
    // The periodic full pass lists the remote and puts it back.
    let back = poll_until(SETTLE, || backend.get("a.md"));
    assert_eq!(
        back.as_deref(),
        Some(&b"alpha"[..]),
        "not repaired: {}\nlog: {}",
        status(&env),
        daemon.log_text()
    );
    // And through `ctl push --all`, at once.
    backend.delete("b.md");
    env.run(&["ctl", "push", "--all"]).assert_code(0);
    assert_eq!(backend.get("b.md").as_deref(), Some(&b"bravo"[..]));
    // A blob changed behind our back is reported by the next periodic pass, never "All
    // … backed up" on the index's word.
    backend.put("b.md", b"another client's bytes");
    let s = poll_until(SETTLE, || {
        let s = status(&env);
        (s["conflicts"].as_u64() == Some(1)).then_some(s)
    })
    .unwrap_or_else(|| panic!("not reported: {}\n{}", status(&env), daemon.log_text()));
    let text = verdict(&s);
    assert!(!text.starts_with("All"), "{text}");
    assert!(text.contains("another writer changed"), "{text}");
}

macro_rules! suite {
    ($name:ident, $backend:ty) => {
        mod $name {
            use super::*;

            #[test]
            fn a_slow_mass_delete_is_held() {
                super::a_slow_mass_delete_is_held::<$backend>();
            }

            #[test]
            fn a_root_replaced_by_a_placeholder_is_held() {
                super::a_root_replaced_by_a_placeholder_is_held::<$backend>();
            }

            #[test]
            fn a_blob_deleted_behind_the_daemons_back_comes_back() {
                super::a_blob_deleted_behind_the_daemons_back_comes_back::<$backend>();
            }
        }
    };
}

suite!(azure, AzureBackend);
suite!(directory, DirectoryBackend);

// --- C: permission refusals and reloads (Azure) ----------------------------------------------

/// Writes the credentials file (mode 0600).
fn write_credentials(env: &TestEnv, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = env.config_home().join("devlog/credentials");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

#[test]
fn a_sas_without_delete_permission_is_a_verdict_not_a_retry_loop() {
    let az = Azurite::shared();
    let container = unique_container("nodelete");
    let sas = common::account_sas_for(common::ACCOUNT_KEY, "racwlup", "2099-01-01T00:00:00Z");
    let env = TestEnv::new().with_sas(sas);
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    for i in 0..4 {
        env.write_file(&format!("{i}.md"), format!("file {i}"));
    }
    let daemon = running(&env, SETTLE);
    std::fs::remove_file(env.journal().join("0.md")).unwrap();
    let refused = poll_until(SETTLE, || {
        let s = status(&env);
        (s.refused_deletes == 1).then_some(s)
    });
    let s = refused.unwrap_or_else(|| panic!("{}\n{}", status(&env), daemon.log_text()));
    let text = verdict(&s);
    assert!(text.contains("lacks delete permission"), "{text}");
    assert!(!text.contains("backed up"), "{text}");
    // Not a retry loop: a full pass and an explicit push later, still one blob and no
    // history copy made for it.
    env.run(&["ctl", "push"]).assert_code(1);
    let names: Vec<String> = az
        .list_blobs(&container)
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(names.contains(&"0.md".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with(HISTORY)),
        "history copies made: {names:?}"
    );
    assert_eq!(status(&env).failed_paths, 0);
}

#[test]
fn a_delete_the_service_refuses_is_not_retried_until_reload() {
    use common::hostile::{Action, Hostile, Resp};
    let az = Azurite::shared();
    let container = unique_container("refused");
    // Credentials that may delete by their own account (an account key, a role), yet the
    // service refuses every Delete Blob.
    let service = Hostile::proxy(az.port(), |req| {
        if req.method == "DELETE" && req.blob_name().is_some() {
            Action::Reply(Resp::error(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            ))
        } else {
            Action::Forward
        }
    });
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n\n[sync]\nrescan_interval_s = 10\n",
        service.container_url(&container)
    ));
    for i in 0..4 {
        env.write_file(&format!("{i}.md"), format!("file {i}"));
    }
    let daemon = running(&env, SETTLE);
    std::fs::remove_file(env.journal().join("0.md")).unwrap();
    let s = poll_until(SETTLE, || {
        let s = status(&env);
        (s.refused_deletes == 1 && settled(&env)).then_some(s)
    })
    .unwrap_or_else(|| panic!("{}\n{}", status(&env), daemon.log_text()));
    let text = verdict(&s);
    assert!(text.contains("lack delete permission"), "{text}");
    let tries = || {
        let requests = service.requests();
        let deletes = requests
            .iter()
            .filter(|r| r.method == "DELETE" && r.blob_name().is_some())
            .count();
        let copies = requests
            .iter()
            .filter(|r| r.header("x-ms-copy-source").is_some())
            .count();
        (deletes, copies)
    };
    let before = tries();
    // Two periodic full passes later: not one more try, not one more history copy.
    let rescans = s.rescans;
    wait_for(SETTLE, "two more periodic passes", || {
        let s = status(&env);
        (s.rescans >= rescans + 2 && settled(&env)).then_some(())
    });
    assert_eq!(tries(), before, "retried: {}", daemon.log_text());
    assert_eq!(before.0, 1, "one delete tried");
    assert_eq!(status(&env).refused_deletes, 1);
    // A reload (new credentials, say) tries once more.
    env.run(&["ctl", "reload"]).assert_code(0);
    wait_for(SETTLE, "the delete tried again", || {
        (tries().0 == 2).then_some(())
    });
}

#[test]
fn a_read_only_sas_is_named_as_lacking_permissions() {
    let az = Azurite::shared();
    let container = unique_container("readonly");
    az.create_container(&container);
    let sas = common::account_sas_for(common::ACCOUNT_KEY, "rl", "2099-01-01T00:00:00Z");
    let env = TestEnv::new().with_sas(sas);
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    env.write_file("a.md", b"alpha");
    let daemon = Daemon::start(&env);
    let said = poll_until(SETTLE, || {
        let text = verdict(&status(&env));
        text.contains("the SAS lacks add, create, write, delete permission")
            .then_some(text)
    });
    assert!(said.is_some(), "{}\n{}", status(&env), daemon.log_text());
}

#[test]
fn a_reload_with_new_credentials_retries_at_once() {
    let az = Azurite::shared();
    let container = unique_container("reload");
    let env = TestEnv::new();
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    let bad = common::account_sas_signed_with(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    write_credentials(&env, &format!("AZURE_STORAGE_SAS_TOKEN={bad}\n"));
    env.write_file("a.md", b"alpha");
    let daemon = Daemon::start(&env);
    // Refused long enough that the back-off is long.
    let waited = poll_until(Duration::from_secs(120), || {
        let s = status(&env);
        (s["next_retry_in_s"].as_u64().unwrap_or(0) >= 15).then_some(())
    });
    assert!(waited.is_some(), "{}\n{}", status(&env), daemon.log_text());
    write_credentials(
        &env,
        &format!("AZURE_STORAGE_SAS_TOKEN={}\n", az.account_sas()),
    );
    env.run(&["ctl", "reload"]).assert_code(0);
    let pushed = poll_until(Duration::from_secs(10), || az.get_blob(&container, "a.md"));
    assert_eq!(
        pushed.as_deref(),
        Some(&b"alpha"[..]),
        "still waiting out the back-off: {}\n{}",
        status(&env),
        daemon.log_text()
    );
}

#[test]
fn a_token_in_the_environment_that_wins_over_the_credentials_file_is_said() {
    let az = Azurite::shared();
    let container = unique_container("shadow");
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    env.write_file("a.md", b"alpha");
    let daemon = running(&env, SETTLE);
    // The token is rotated in the credentials file; the service manager still hands the
    // daemon the old one.
    let rotated = common::account_sas_for(common::ACCOUNT_KEY, "racwdl", "2098-01-01T00:00:00Z");
    write_credentials(&env, &format!("AZURE_STORAGE_SAS_TOKEN={rotated}\n"));
    env.run(&["ctl", "reload"]).assert_code(0);
    let said = poll_until(SETTLE, || {
        let s = status(&env);
        let warnings = s["verdict"]["warnings"].to_string();
        warnings
            .contains("AZURE_STORAGE_SAS_TOKEN in devlogd's environment is used")
            .then_some(())
    });
    assert!(said.is_some(), "{}", status(&env));
    let human = env.run(&["ctl", "status"]);
    assert!(
        human.stdout.contains("in devlogd's environment is used"),
        "{}",
        human.stdout
    );
    assert!(
        daemon
            .log_text()
            .contains("in devlogd's environment is used"),
        "{}",
        daemon.log_text()
    );
}

// --- D: bounds on every number; E: an index from a newer devlogd ------------------------------

#[test]
fn a_huge_keep_versions_days_is_refused_by_config_check_and_run() {
    let env = TestEnv::new();
    env.write_config("[sync]\nkeep_versions_days = 4000000\n");
    for args in [&["config", "check"][..], &["run"][..]] {
        let out = env.run_with_timeout(args, Duration::from_secs(30));
        out.assert_code(2);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains("sync.keep_versions_days")
                && said.contains("between 1 and 36500 days (got 4000000)"),
            "{args:?}: {said}"
        );
    }
}

fn an_index_from_a_newer_devlogd_is_rebuilt_and_the_daemon_runs<B: Backend>() {
    let (env, backend) = world_with::<B>("");
    env.write_file("a.md", b"alpha");
    env.run(&["push"]).assert_code(0);
    let state = env.state_home().join("devlog");
    let index = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .expect("the index");
    let conn = rusqlite::Connection::open(&index).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    env.write_file("b.md", b"bravo");
    let daemon = running(&env, SETTLE);
    wait_for(SETTLE, "b.md on the remote", || backend.get("b.md"));
    let s = status(&env);
    assert_eq!(s.files_in_index, 2, "{s}");
    assert!(
        s["verdict"]["warnings"]
            .to_string()
            .contains("newer devlogd"),
        "{s}"
    );
    assert_eq!(backend.get("a.md").as_deref(), Some(&b"alpha"[..]));
    assert_eq!(
        s["conflicts"].as_u64(),
        Some(0),
        "adopted, not a conflict: {s}"
    );
    let kept = std::fs::read_dir(&state)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".broken-")
        })
        .count();
    assert_eq!(kept, 1, "the newer index is kept aside");
    drop(daemon);
}

#[test]
fn an_index_from_a_newer_devlogd_is_rebuilt_and_the_daemon_runs_directory() {
    an_index_from_a_newer_devlogd_is_rebuilt_and_the_daemon_runs::<DirectoryBackend>();
}

#[test]
fn an_index_from_a_newer_devlogd_is_rebuilt_and_the_daemon_runs_azure() {
    an_index_from_a_newer_devlogd_is_rebuilt_and_the_daemon_runs::<AzureBackend>();
}
