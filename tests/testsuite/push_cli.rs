//! `devlogd push` as a user meets it: configuration errors, credentials, the built-in
//! mirror, switching remotes, a damaged index, an unreachable service.

use crate::common;

use common::{ACCOUNT_KEY, Azurite, TestEnv, account_sas_signed_with, unique_container};

fn azure_env(az: &Azurite, container: &str) -> TestEnv {
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(container)
    ));
    env
}

fn json(out: &common::RunOutput) -> serde_json::Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

#[test]
fn no_change_push_makes_no_request_at_all() {
    let mut az = Azurite::start();
    let container = unique_container("noreq");
    let env = azure_env(&az, &container);
    for i in 0..20 {
        env.write_file(&format!("d{}/n{i}.md", i % 3), format!("note {i}"));
    }
    let first = env.run(&["push", "--json"]);
    first.assert_code(0);
    assert_eq!(json(&first)["uploaded"], 20);
    // With the service gone, a request would fail: an incremental no-change push must not
    // make one.
    az.stop();
    let second = env.run(&["push", "--json"]);
    second.assert_code(0);
    assert_eq!(json(&second)["uploaded"], 0);
    assert_eq!(json(&second)["unchanged"], 20);
}

#[test]
fn wrong_sas_exits_4_without_leaking_it() {
    let az = Azurite::shared();
    let container = unique_container("badsas");
    az.create_container(&container);
    let bad_key =
        "QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2U=";
    let bad_sas = account_sas_signed_with(bad_key);
    let env = TestEnv::new().with_sas(bad_sas.clone());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    for i in 0..40 {
        env.write_file(&format!("n{i}.md"), "x");
    }
    let out = env.run(&["-vv", "push"]);
    out.assert_code(4);
    assert!(
        out.stderr.contains("refused the credentials")
            && out.stderr.contains("AZURE_STORAGE_SAS_TOKEN"),
        "{}",
        out.stderr
    );
    let sig = bad_sas
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .expect("sig in SAS");
    let decoded = percent_encoding::percent_decode_str(sig)
        .decode_utf8_lossy()
        .into_owned();
    for leak in [sig, decoded.as_str(), bad_sas.as_str()] {
        assert!(!out.stderr.contains(leak), "secret leaked: {}", out.stderr);
        assert!(!out.stdout.contains(leak), "secret leaked: {}", out.stdout);
    }
    assert!(az.list_blobs(&container).is_empty());
    // The run stopped at once rather than failing 40 files one by one.
    assert!(
        out.stderr.matches("refused").count() == 1,
        "one message, not one per file: {}",
        out.stderr
    );
    let _ = ACCOUNT_KEY;
}

#[test]
fn trace_logs_of_a_real_push_never_show_the_sas() {
    let az = Azurite::shared();
    let container = unique_container("trace");
    let env = azure_env(az, &container);
    env.write_file("a b#?.md", "a");
    let out = env.run(&["-vv", "push", "--all"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("TRACE") || out.stderr.contains("DEBUG"),
        "logs at trace"
    );
    let sas = az.account_sas();
    let sig = sas
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .unwrap();
    let decoded = percent_encoding::percent_decode_str(sig)
        .decode_utf8_lossy()
        .into_owned();
    for leak in [sig, decoded.as_str()] {
        assert!(!out.stderr.contains(leak), "SAS signature in the logs");
        assert!(!out.stdout.contains(leak), "SAS signature in the output");
    }
}

#[test]
fn bad_config_exits_2_and_names_the_key_and_file() {
    let cases = [
        ("[sync]\ndebounce = 300\n", "debounce"),
        ("[sync]\nconcurrency = \"lots\"\n", "sync.concurrency"),
        ("[sync]\nconcurrency = 0\n", "sync.concurrency"),
        ("[sync]\non_conflict = \"merge\"\n", "merge"),
        ("[remote]\nurl = \"ftp://example.com/c\"\n", "remote.url"),
        (
            "[remote]\nurl = \"https://acct.blob.core.windows.net/\"\n",
            "remote.url",
        ),
        ("root = 42\n", "root"),
        ("[sync]\ninclude = [\"a[\"]\n", "sync.include"),
        ("this is not toml", "config.toml"),
    ];
    for (text, key) in cases {
        let env = TestEnv::new();
        let path = env.write_config(text);
        let out = env.run(&["push"]);
        out.assert_code(2);
        let line = out.stderr.trim();
        assert!(line.contains(key), "{text:?}: {line}");
        assert!(
            line.contains(&path.display().to_string()),
            "{text:?}: {line}"
        );
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        let check = env.run(&["config", "check"]);
        check.assert_code(2);
    }
}

#[test]
fn explicit_missing_config_file_is_an_error() {
    let env = TestEnv::new();
    let out = env.run(&["push", "--config", "/nonexistent/devlog.toml"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("/nonexistent/devlog.toml"),
        "{}",
        out.stderr
    );
}

#[test]
fn config_holding_a_sas_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let az = Azurite::shared();
    let env = TestEnv::new();
    let url = format!("{}?{}", az.container_url("private-cfg"), az.account_sas());
    let path = env.write_config(&format!("[remote]\nurl = \"{url}\"\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["push"]);
    out.assert_code(2);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.write_file("a.md", "a");
    env.run(&["push"]).assert_code(0);
    let check = env.run(&["config", "check"]);
    check.assert_code(0);
    assert!(check.stdout.contains("?***"), "{}", check.stdout);
    assert!(
        check.stdout.contains("the SAS token in remote.url"),
        "{}",
        check.stdout
    );
    let sig = az.account_sas();
    let sig = sig
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .unwrap();
    assert!(!check.stdout.contains(sig), "{}", check.stdout);
}

#[test]
fn missing_credentials_say_what_to_set() {
    let az = Azurite::shared();
    let env = TestEnv::new();
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url("nocreds")
    ));
    env.write_file("a.md", "a");
    let out = env.run(&["push"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("AZURE_STORAGE_SAS_TOKEN"),
        "{}",
        out.stderr
    );
}

#[test]
fn no_config_mirrors_into_the_data_dir_and_says_where() {
    let env = TestEnv::new();
    env.write_file("today.md", "hello");
    env.write_file("events/20261122.jsonl", "{}\n");
    let out = env.run(&["push"]);
    out.assert_code(0);
    let mirror = env.data_home().join("devlog/mirror");
    assert!(
        out.stderr.contains(&mirror.display().to_string()),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(mirror.join("today.md")).unwrap(), b"hello");
    assert_eq!(
        std::fs::read(mirror.join("events/20261122.jsonl")).unwrap(),
        b"{}\n"
    );
    assert!(out.stdout.contains("uploaded    2 files"), "{}", out.stdout);
}

#[test]
fn missing_root_is_a_clear_error() {
    let env = TestEnv::new();
    std::fs::remove_dir_all(env.journal()).unwrap();
    let out = env.run(&["push"]);
    out.assert_code(2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(out.stderr.contains("mkdir -p"), "{}", out.stderr);
}

#[test]
fn switching_remotes_starts_a_full_first_push() {
    let az = Azurite::shared();
    let env = TestEnv::new().with_sas(az.account_sas());
    for i in 0..5 {
        env.write_file(&format!("n{i}.md"), format!("{i}"));
    }
    env.run(&["push"]).assert_code(0); // the built-in mirror
    let container = unique_container("switch");
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    let out = env.run(&["push", "--json"]);
    out.assert_code(0);
    assert_eq!(json(&out)["uploaded"], 5);
    assert_eq!(az.list_blobs(&container).len(), 5);
    // A prefix is another remote too.
    env.write_config(&format!(
        "[remote]\nurl = \"{}/laptop/journal\"\n",
        az.container_url(&container)
    ));
    let out = env.run(&["push", "--json"]);
    assert_eq!(json(&out)["uploaded"], 5);
    let names: Vec<String> = az
        .list_blobs(&container)
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(
        names.contains(&"laptop/journal/n0.md".to_string()),
        "{names:?}"
    );
    assert_eq!(names.len(), 10);
}

#[test]
fn damaged_index_is_explained_and_rebuilt_by_push_all() {
    let az = Azurite::shared();
    let container = unique_container("corrupt");
    let env = azure_env(az, &container);
    for i in 0..10 {
        env.write_file(&format!("n{i}.md"), format!("{i}"));
    }
    env.run(&["push"]).assert_code(0);
    let state = env.state_home().join("devlog");
    let index = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .expect("an index file");
    for side in ["sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(index.with_extension(side));
    }
    std::fs::write(&index, vec![0x5a; 8192]).unwrap();
    let out = env.run(&["push"]);
    out.assert_code(2);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    assert!(out.stderr.contains("devlogd push --all"), "{}", out.stderr);
    // Again: it does not crash or loop, it says the same.
    env.run(&["push"]).assert_code(2);
    let out = env.run(&["push", "--all", "--json"]);
    out.assert_code(0);
    let report = json(&out);
    assert_eq!(
        report["uploaded"], 0,
        "rebuilt from the remote, not re-uploaded"
    );
    assert_eq!(report["unchanged"], 10);
    let out = env.run(&["push", "--json"]);
    out.assert_code(0);
    assert_eq!(json(&out)["uploaded"], 0);
}

#[test]
fn unreachable_endpoint_fails_files_with_a_clear_message() {
    let port = common::dead_port();
    let env = TestEnv::new().with_sas("sv=2021-08-06&ss=b&srt=sco&sp=rwl&sig=bm90cmVhbA%3D%3D");
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{port}/devstoreaccount1/gone\"\n"
    ));
    for i in 0..200 {
        env.write_file(&format!("n{i}.md"), "n");
    }
    env.write_file("a.md", "a");
    let out = env.run(&["push", "--json"]);
    out.assert_code(1);
    let line = out.stderr.trim();
    assert!(line.contains("cannot reach"), "{line}");
    assert!(line.contains("Connection refused"), "{line}");
    assert!(line.contains("check remote.url"), "{line}");
    // The run stops once the service is known unreachable: only the uploads already in
    // flight (at most the starting concurrency limit, 64) fail, the other files are not
    // tried one by one.
    let failed = json(&out)["failed"].as_array().unwrap().len();
    assert!((1..=64).contains(&failed), "{failed} files failed");
    assert!(!out.stdout.contains("bm90cmVhbA"), "{}", out.stdout);
    assert!(!out.stderr.contains("bm90cmVhbA"), "{}", out.stderr);
    // Nothing was recorded: once the service answers on that same URL, every file goes.
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start_persistent(dir.path(), Some(port));
    let env = env.with_sas(az.account_sas());
    let out = env.run(&["push", "--json"]);
    out.assert_code(0);
    assert_eq!(json(&out)["uploaded"], 201, "{}", out.stdout);
    assert_eq!(az.get_blob("gone", "a.md").unwrap(), b"a");
}
