//! The verdict a person reads first in `devlogd ctl status` (and `--json`'s `verdict`),
//! one test per state, each with the real daemon: against Azurite (backed up, paused,
//! credentials refused, unreachable after it answered), against a loopback port nobody
//! listens on (never reached), and with the built-in local mirror. Also the Prometheus
//! output and `pending_oldest_ms` with paths pending.

use crate::common;

use common::daemon::Daemon;
use common::status::{Status, status};
use common::{
    ACCOUNT_KEY, Azurite, RunOutput, TestEnv, account_sas_for, unique_container, wait_for,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn azure_env(az: &Azurite, sas: String) -> (TestEnv, String) {
    let container = unique_container("verdict");
    let env = TestEnv::new().with_sas(sas);
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n[sync]\ndebounce_ms = 50\nmax_delay_ms = 200\n",
        az.container_url(&container)
    ));
    (env, container)
}

/// Poll until the verdict's state is `state`; the status then.
fn until_verdict(env: &TestEnv, state: &str) -> Status {
    common::status::until_verdict(env, state, WAIT)
}

/// The human status: its first line is the verdict's text.
fn status_text(env: &TestEnv) -> RunOutput {
    let out = env.run(&["ctl", "status"]);
    out.assert_code(0);
    out
}

fn first_line(out: &RunOutput) -> &str {
    out.stdout.lines().next().unwrap_or("")
}

#[test]
fn backed_up_names_the_files_and_the_container_and_prometheus_says_1() {
    let az = Azurite::shared();
    let (env, container) = azure_env(az, az.account_sas());
    env.write_file("a.md", "a\n");
    let _d = Daemon::start(&env);
    let s = until_verdict(&env, "backed_up");
    let text = s.verdict.text.as_str();
    assert!(
        text.starts_with(&format!(
            "All 1 file backed up to Azure ({container}/journal) "
        )),
        "{text}"
    );
    assert!(s.verdict.safe);
    assert_eq!(s["remote_reached"], true);
    let out = status_text(&env);
    // The age moves on between the two calls.
    assert!(
        first_line(&out).starts_with(&format!(
            "All 1 file backed up to Azure ({container}/journal) "
        )),
        "{}",
        out.stdout
    );
    let prom = env.run(&["ctl", "status", "--prometheus"]);
    prom.assert_code(0);
    assert!(
        prom.stdout
            .contains("# TYPE devlogd_backed_up gauge\ndevlogd_backed_up 1\n"),
        "{}",
        prom.stdout
    );
    assert!(
        prom.stdout.contains("devlogd_files_in_index 1\n"),
        "{}",
        prom.stdout
    );
}

#[test]
fn paused_says_so_and_counts_what_waits_with_its_age() {
    let az = Azurite::shared();
    let (env, _container) = azure_env(az, az.account_sas());
    let _d = Daemon::start(&env);
    until_verdict(&env, "backed_up");
    env.run(&["ctl", "pause"]).assert_code(0);
    env.write_file("later.md", "later\n");
    let s = wait_for(WAIT, "a path pending while paused", || {
        let s = status(&env);
        (s.verdict.state == "paused" && s.pending_paths >= 1).then_some(s)
    });
    assert_eq!(
        s["verdict"]["text"],
        "NOT BACKING UP: paused; 1 path waiting — run devlogd ctl resume"
    );
    assert!(!s.verdict.safe);
    // A path pending has an age, wherever it waits (here: in the worker, past the queue).
    wait_for(WAIT, "the path handed to the worker", || {
        let s = status(&env);
        (s.queued_paths == 0 && s.pending_paths == 1).then_some(())
    });
    let s = status(&env);
    assert!(
        s["pending_oldest_ms"].is_u64(),
        "pending_oldest_ms with a path pending: {s:#}"
    );
    let out = status_text(&env);
    assert_eq!(
        first_line(&out),
        "NOT BACKING UP: paused; 1 path waiting — run devlogd ctl resume"
    );
    let prom = env.run(&["ctl", "status", "--prometheus"]);
    assert!(
        prom.stdout.contains("devlogd_backed_up 0\n"),
        "{}",
        prom.stdout
    );
    assert!(
        prom.stdout.contains("devlogd_paused 1\n"),
        "{}",
        prom.stdout
    );
}

#[test]
fn refused_credentials_are_named_with_their_source_and_the_check_to_run() {
    let az = Azurite::shared();
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let (env, _container) = azure_env(
        az,
        account_sas_for(wrong_key, "racwdl", "2099-01-01T00:00:00Z"),
    );
    env.write_file("a.md", "a\n");
    let _d = Daemon::start(&env);
    let s = until_verdict(&env, "credentials_refused");
    let text = s.verdict.text.as_str();
    assert!(
        text.starts_with("NOT BACKED UP: the remote refused the credentials since "),
        "{text}"
    );
    assert!(text.contains("AZURE_STORAGE_SAS_TOKEN"), "{text}");
    assert!(
        text.ends_with("— run devlogd config check --online"),
        "{text}"
    );
    assert!(!s.verdict.safe);
    assert_eq!(s["remote_problem"], "credentials_refused");
    assert!(s.last_success_age_s.is_none(), "{s:#}");
    let out = status_text(&env);
    assert_eq!(first_line(&out), text);
    assert!(
        out.stdout.contains("last success   none yet"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_remote_never_reached_has_no_last_success() {
    let env = TestEnv::new().with_sas(common::account_sas_signed_with(ACCOUNT_KEY));
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{}/devstoreaccount1/nobody\"\n",
        common::dead_port()
    ));
    // Nothing to send: the push asks the remote nothing, which once passed for a success.
    let _d = Daemon::start(&env);
    let s = until_verdict(&env, "never_reached");
    let text = s.verdict.text.as_str();
    assert!(
        text.starts_with("NOT BACKED UP: http://127.0.0.1:")
            && text.contains("has not been reached since devlogd started"),
        "{text}"
    );
    assert!(text.contains("check remote.url and the network"), "{text}");
    assert!(!s.verdict.safe);
    assert!(s.last_success_age_s.is_none(), "{s:#}");
    assert!(s["last_success_unix"].is_null(), "{s:#}");
    let out = status_text(&env);
    assert_eq!(first_line(&out), text);
    assert!(
        out.stdout.contains("last success   none yet"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_remote_that_stops_answering_is_unreachable_since_a_time() {
    let mut az = Azurite::start();
    let (env, _container) = azure_env(&az, az.account_sas());
    env.write_file("a.md", "a\n");
    let _d = Daemon::start(&env);
    until_verdict(&env, "backed_up");
    az.stop();
    env.write_file("b.md", "b\n");
    let s = until_verdict(&env, "unreachable");
    let text = s.verdict.text.as_str();
    assert!(
        text.starts_with("NOT BACKED UP: http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains(" is unreachable since "), "{text}");
    assert!(text.contains("1 path waiting"), "{text}");
    assert!(!s.verdict.safe);
    assert_eq!(s["remote_problem"], "unreachable");
    let out = status_text(&env);
    assert!(
        first_line(&out).starts_with("NOT BACKED UP: http://127.0.0.1:"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_built_in_mirror_is_not_off_this_machine_and_has_no_credential() {
    let env = TestEnv::new();
    env.write_file("a.md", "a\n");
    let _d = Daemon::start(&env);
    let s = until_verdict(&env, "local_mirror");
    let text = s.verdict.text.as_str();
    assert!(
        text.starts_with("NOT OFF THIS MACHINE: mirroring to a local directory (file://"),
        "{text}"
    );
    assert!(!s.verdict.safe);
    assert_eq!(s["remote_kind"], "local_mirror");
    let out = status_text(&env);
    assert!(
        first_line(&out)
            .starts_with("NOT OFF THIS MACHINE: mirroring to a local directory (file://"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("credential"),
        "a directory has no credential: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("the built-in mirror, on this machine's disk"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_sas_that_expires_within_a_week_is_warned_about_in_the_status() {
    let az = Azurite::shared();
    let se = common::expiry_in(time::Duration::days(3));
    let (env, _container) = azure_env(az, account_sas_for(ACCOUNT_KEY, "racwdl", &se));
    let _d = Daemon::start(&env);
    let s = until_verdict(&env, "backed_up");
    let warning = s["verdict"]["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.starts_with("the SAS token expires at "), "{s:#}");
    let out = status_text(&env);
    let second = out.stdout.lines().nth(1).unwrap_or("");
    assert!(
        second.starts_with("WARNING: the SAS token expires at "),
        "{}",
        out.stdout
    );
}
