//! What `config check` (plain and `--online`), `push` and `ctl status` tell a user about their
//! setup, from the walkthrough's findings: a garbled SAS signature is named as such (not as
//! the network), a misspelt credentials key is named with its line, a SAS expiring in one day
//! says "1 day", a new machine without the journal root still gets its online check, the sync
//! mode is shown, and a remote first configured by a reload is not "since devlogd started".

use crate::common;

use common::daemon::{Daemon, running};
use common::status::{status, until_verdict};
use common::{ACCOUNT_KEY, Azurite, TestEnv, account_sas_for, unique_container, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A journal backed up to a new container on the shared Azurite, with `sas` (when given) in
/// the environment.
fn azure_env(az: &Azurite, sas: Option<String>, extra: &str) -> TestEnv {
    let env = match sas {
        Some(sas) => TestEnv::new().with_sas(sas),
        None => TestEnv::new(),
    };
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n[sync]\ndebounce_ms = 50\nmax_delay_ms = 200\n{extra}",
        az.container_url(&unique_container("walk-config"))
    ));
    env
}

/// Writes the credentials file (mode 0600) with `text`.
fn write_credentials(env: &TestEnv, text: &str) -> std::path::PathBuf {
    let path = env.config_home().join("devlog/credentials");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `sas` with its signature replaced by `sig`.
fn with_signature(sas: &str, sig: &str) -> String {
    let (fields, _) = sas.split_once("&sig=").expect("sig comes last");
    format!("{fields}&sig={sig}")
}

#[test]
fn a_garbled_sas_signature_is_named_not_taken_for_the_network() {
    let az = Azurite::shared();
    let env = azure_env(az, Some(with_signature(&az.account_sas(), "%%%")), "");
    env.write_file("a.md", "a\n");
    let said = "the SAS token's signature (sig) is not valid base64: copy the whole token again";
    for args in [
        &["config", "check"][..],
        &["config", "check", "--online"],
        &["push"],
    ] {
        let out = env.run(args);
        out.assert_code(2);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("AZURE_STORAGE_SAS_TOKEN (environment)"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("network"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_misspelt_key_in_the_credentials_file_is_named_with_its_line() {
    let az = Azurite::shared();
    let env = azure_env(az, None, "");
    let path = write_credentials(
        &env,
        &format!(
            "# devlogd credentials\nAZURE_STORAGE_SAS_TOKN={}\n",
            az.account_sas()
        ),
    );
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    let line = format!(
        "{} line 2: unknown key AZURE_STORAGE_SAS_TOKN (did you mean AZURE_STORAGE_SAS_TOKEN?)",
        path.display()
    );
    assert!(out.stderr.contains(&line), "{}", out.stderr);
    assert!(!out.stderr.contains("no credentials for"), "{}", out.stderr);
    // Also beside a line that is right: the misspelt one is not silently ignored.
    write_credentials(
        &env,
        &format!(
            "AZURE_STORAGE_SAS_TOKEN={}\nAZURE_STORAGE_ACOUNT=devstoreaccount1\n",
            az.account_sas()
        ),
    );
    let out = env.run(&["push"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "{} line 2: unknown key AZURE_STORAGE_ACOUNT (did you mean AZURE_STORAGE_ACCOUNT?)",
            path.display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sas_expiring_tomorrow_says_one_day() {
    let az = Azurite::shared();
    let se = common::expiry_in(time::Duration::hours(40));
    let env = azure_env(az, Some(account_sas_for(ACCOUNT_KEY, "racwdl", &se)), "");
    let out = env.run(&["config", "check", "--online"]);
    out.assert_code(0);
    assert!(out.stdout.contains("(in 1 day)"), "{}", out.stdout);
    assert!(!out.stdout.contains("1 days"), "{}", out.stdout);
}

#[test]
fn the_online_check_goes_on_without_the_journal_root() {
    let az = Azurite::shared();
    let env = azure_env(az, Some(az.account_sas()), "");
    std::fs::remove_dir_all(env.journal()).unwrap();
    let out = env.run(&["config", "check", "--online"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!(
            "root           {} (does not exist yet: devlogd restore or devlog new creates it)",
            env.journal().display()
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("reachable      yes"), "{}", out.stdout);
    assert!(out.stdout.contains("online         OK"), "{}", out.stdout);
    assert!(!env.journal().exists());
}

#[test]
fn config_check_and_ctl_status_show_the_sync_mode() {
    let env = TestEnv::new();
    let remote = env.root().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let write = |extra: &str| {
        env.write_config(&format!(
            "[remote]\nurl = \"file://{}\"\n[sync]\ndebounce_ms = 50\n{extra}",
            remote.display()
        ))
    };
    write("");
    let out = env.run(&["config", "check"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("mode           backup (this machine's changes go up, nothing comes down)"),
        "{}",
        out.stdout
    );
    write("mode = \"two-way\"\npull_interval_s = 2\n");
    let out = env.run(&["config", "check"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("mode           two-way, pull every 2 s"),
        "{}",
        out.stdout
    );
    env.write_file("a.md", "a\n");
    let _d = running(&env, WAIT);
    let out = env.run(&["ctl", "status"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("\nmode           two-way, pull every 2 s\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_remote_changed_by_a_reload_is_not_reached_since_the_reload() {
    let az = Azurite::shared();
    let env = azure_env(az, Some(az.account_sas()), "");
    env.write_file("a.md", "a\n");
    let _d = Daemon::start(&env);
    wait_for(WAIT, "the remote reached", || {
        (status(&env).verdict.state == "backed_up").then_some(())
    });
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{}/devstoreaccount1/nobody/journal\"\n[sync]\ndebounce_ms = 50\n",
        common::dead_port()
    ));
    env.run(&["ctl", "reload"]).assert_code(0);
    let s = until_verdict(&env, "never_reached", WAIT);
    let text = s.verdict.text.as_str();
    assert!(
        text.contains("has not been reached since the reload at ") && text.contains(" UTC"),
        "{text}"
    );
    assert!(!text.contains("since devlogd started"), "{text}");
}
