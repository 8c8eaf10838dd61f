//! Every credential source against a real Azurite: account key (Shared Key signing, ours),
//! connection strings, the credentials file and its permissions, Entra ID selection and
//! error paths, and a sweep for secrets in everything devlogd writes.

use crate::common;

use common::daemon::Daemon;
use common::{
    ACCOUNT, ACCOUNT_KEY, Azurite, RunOutput, TestEnv, md5_b64, unique_container, wait_for,
};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// Names that stress Shared Key's canonicalized resource: spaces, unicode, `+`, `%`, `#`, `?`.
fn awkward_journal(env: &TestEnv) -> BTreeMap<String, String> {
    let mut want = BTreeMap::new();
    for name in [
        "plain.md",
        "with space.md",
        "plus+sign.md",
        "per%cent.md",
        "hash#and?question.md",
        "ünïcödé/日本語 notes.md",
        "events/2026 11/22.jsonl",
    ] {
        let body = format!("content of {name}\n");
        want.insert(name.to_string(), md5_b64(body.as_bytes()));
        env.write_file(name, body);
    }
    want
}

fn blobs(az: &Azurite, container: &str, prefix: &str) -> BTreeMap<String, String> {
    az.list_blobs(container)
        .into_iter()
        .filter_map(|b| {
            let name = b.name.strip_prefix(prefix)?.to_string();
            Some((name, b.content_md5_b64.unwrap_or_default()))
        })
        .collect()
}

fn json(out: &RunOutput) -> serde_json::Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

fn write_private(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `push`, `push --all` (a list with prefix, restype and comp), a no-change push and
/// `verify`, all signed with the account key from `vars`.
fn full_round_with(vars: &[(&str, &str)], env: &TestEnv, az: &Azurite, container: &str) {
    let prefix = "laptop/journal/";
    env.write_config(&format!(
        "[remote]\nurl = \"{}/{}\"\n",
        az.container_url(container),
        prefix.trim_end_matches('/')
    ));
    let want = awkward_journal(env);
    let run = |args: &[&str]| {
        let mut cmd = env.devlogd();
        cmd.args(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        RunOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let out = run(&["push", "--json"]);
    out.assert_code(0);
    assert_eq!(json(&out)["uploaded"], want.len());
    assert_eq!(blobs(az, container, prefix), want);
    let out = run(&["push", "--all", "--json"]);
    out.assert_code(0);
    assert_eq!(json(&out)["uploaded"], 0, "{}", out.stdout);
    assert_eq!(json(&out)["unchanged"], want.len());
    run(&["verify"]).assert_code(0);
    let check = run(&["config", "check"]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("the account key in"),
        "{}",
        check.stdout
    );
}

#[test]
fn account_key_from_the_environment_signs_every_request() {
    let az = Azurite::shared();
    let container = unique_container("key");
    let env = TestEnv::new();
    full_round_with(
        &[
            ("AZURE_STORAGE_ACCOUNT", ACCOUNT),
            ("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY),
        ],
        &env,
        az,
        &container,
    );
}

#[test]
fn connection_string_with_an_account_key() {
    let az = Azurite::shared();
    let container = unique_container("connkey");
    let env = TestEnv::new();
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={}",
        az.account_url()
    );
    full_round_with(
        &[("AZURE_STORAGE_CONNECTION_STRING", &cs)],
        &env,
        az,
        &container,
    );
}

#[test]
fn connection_string_with_a_sas() {
    let az = Azurite::shared();
    let container = unique_container("connsas");
    let env = TestEnv::new();
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    env.write_file("a.md", "a");
    let cs = format!(
        "BlobEndpoint={};SharedAccessSignature={}",
        az.account_url(),
        az.account_sas()
    );
    let out = env
        .devlogd()
        .args(["push"])
        .env("AZURE_STORAGE_CONNECTION_STRING", &cs)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(az.get_blob(&container, "a.md").unwrap(), b"a");
}

#[test]
fn credentials_file_is_used_and_must_be_private() {
    let az = Azurite::shared();
    let container = unique_container("credfile");
    let env = TestEnv::new();
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    env.write_file("a.md", "from the credentials file");
    let creds = env.config_home().join("devlog/credentials");
    write_private(
        &creds,
        &format!(
            "# devlogd\nAZURE_STORAGE_ACCOUNT={ACCOUNT}\nAZURE_STORAGE_ACCOUNT_KEY=\"{ACCOUNT_KEY}\"\n"
        ),
    );
    let check = env.run(&["config", "check"]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("credentials file"),
        "{}",
        check.stdout
    );
    env.run(&["push"]).assert_code(0);
    assert_eq!(
        az.get_blob(&container, "a.md").unwrap(),
        b"from the credentials file"
    );

    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [&["push"][..], &["config", "check"], &["run"]] {
        let out = env.run_with_timeout(args, Duration::from_secs(30));
        out.assert_code(2);
        assert!(
            out.stderr
                .contains(&format!("chmod 600 {}", creds.display())),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_wrong_account_key_exits_4_and_names_the_source() {
    let az = Azurite::shared();
    let container = unique_container("wrongkey");
    az.create_container(&container);
    let env = TestEnv::new();
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    env.write_file("a.md", "a");
    let wrong =
        "QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2U=";
    let out = env
        .devlogd()
        .args(["push"])
        .env("AZURE_STORAGE_ACCOUNT_KEY", wrong)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(
        stderr.contains("AZURE_STORAGE_ACCOUNT_KEY (environment)"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "{stderr}");
    assert!(az.list_blobs(&container).is_empty());
}

#[test]
fn entra_id_selection_and_error_paths() {
    let env = TestEnv::new();
    env.write_file("a.md", "a");
    // An emulator over http: tokens are never sent in the clear.
    env.write_config(
        "[remote]\nurl = \"http://127.0.0.1:1/devstoreaccount1/entra\"\nauth = \"entra\"\n",
    );
    let out = env.run(&["push"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("only sent over https"),
        "{}",
        out.stderr
    );

    // https on loopback (nothing listens): no `az` on PATH, so the developer-tools
    // credential fails before any request is made, and says how to log in.
    env.write_config(
        "[remote]\nurl = \"https://127.0.0.1:1/devstoreaccount1/entra\"\nauth = \"entra\"\n",
    );
    let check = env.run(&["config", "check"]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("auth           entra"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("az login"), "{}", check.stdout);
    let out = env.run_with_timeout(&["push"], Duration::from_secs(60));
    out.assert_code(4);
    assert!(out.stderr.contains("Entra ID"), "{}", out.stderr);
    assert!(out.stderr.contains("az login"), "{}", out.stderr);

    // A client secret in the environment is chosen over the developer tools (shown by
    // `config check`, which requests no token).
    let secret = "entra-client-secret-value-0123456789";
    let out = env
        .devlogd()
        .args(["config", "check"])
        .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
        .env("AZURE_TENANT_ID", "66666666-7777-8888-9999-000000000000")
        .env("AZURE_CLIENT_SECRET", secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("client secret of app 11111111-2222-3333-4444-555555555555"),
        "{stdout}"
    );
    assert!(!stdout.contains(secret), "{stdout}");

    env.write_config("[remote]\nurl = \"https://acct.blob.core.windows.net/entra\"\nauth = \"managed-identity\"\n");
    let check = env.run(&["config", "check"]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("system-assigned managed identity"),
        "{}",
        check.stdout
    );
}

/// Everything devlogd writes — trace logs, status JSON, error messages, `config check` —
/// searched for the secret values used; any hit fails.
#[test]
fn no_secret_ever_appears_in_anything_devlogd_writes() {
    let az = Azurite::shared();
    let container = unique_container("leaks");
    let env = TestEnv::new();
    let sas = az.account_sas();
    let sig = sas
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .unwrap()
        .to_string();
    let sig_decoded = percent_encoding::percent_decode_str(&sig)
        .decode_utf8_lossy()
        .into_owned();
    let client_secret = "entra-client-secret-value-0123456789";
    let secrets = [
        ACCOUNT_KEY.to_string(),
        sig.clone(),
        sig_decoded,
        client_secret.to_string(),
    ];
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, out: &std::process::Output| {
        outputs.push((
            what.to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        outputs.push((
            what.to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    };
    let devlogd = |vars: &[(&str, &str)], args: &[&str]| {
        let mut cmd = env.devlogd();
        cmd.args(args).env("RUST_LOG", "trace");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    env.write_file("a b+%.md", "a");
    let key_vars = [
        ("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY),
        ("AZURE_CLIENT_SECRET", client_secret),
    ];
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    record(
        "push with account key",
        &devlogd(&key_vars, &["push", "--all"]),
    );
    record(
        "config check with account key",
        &devlogd(&key_vars, &["config", "check"]),
    );
    record("verify", &devlogd(&key_vars, &["verify", "--json"]));
    // The SAS in the URL, and a bad one for the error path.
    let url_with_sas = format!("{}?{sas}", az.container_url(&container));
    env.write_config(&format!("[remote]\nurl = \"{url_with_sas}\"\n"));
    env.write_file("b.md", "b");
    record("push with SAS in URL", &devlogd(&[], &["push", "--json"]));
    record(
        "config check with SAS in URL",
        &devlogd(&[], &["config", "check"]),
    );
    let bad_url = url_with_sas.replace(&sig, &format!("{}AA", &sig[..sig.len() - 6]));
    env.write_config(&format!("[remote]\nurl = \"{bad_url}\"\n"));
    env.write_file("c.md", "c");
    record("push with a bad SAS", &devlogd(&[], &["push"]));
    // The daemon: its trace log and its status.
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    let mut daemon = Daemon::start_with(
        &env,
        &[
            ("RUST_LOG", "trace"),
            ("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY),
        ],
    );
    env.write_file("d.md", "d");
    wait_for(Duration::from_secs(30), "d.md", || {
        az.get_blob(&container, "d.md")
    });
    record(
        "ctl status --json",
        &devlogd(&[], &["ctl", "status", "--json"]),
    );
    record(
        "ctl push",
        &devlogd(&[], &["ctl", "push", "--all", "--json"]),
    );
    let status = env.run(&["ctl", "status", "--json"]);
    assert!(
        status
            .stdout
            .contains("AZURE_STORAGE_ACCOUNT_KEY (environment)"),
        "{}",
        status.stdout
    );
    env.run(&["ctl", "stop"]).assert_code(0);
    daemon.wait_exit(Duration::from_secs(20));
    outputs.push(("daemon trace log".into(), daemon.log_text()));

    let mut checked = 0;
    for (what, text) in &outputs {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into {what}:\n{text}"
            );
        }
        checked += text.len();
    }
    assert!(
        checked > 10_000,
        "the sweep read real output ({checked} bytes)"
    );
}
