//! `devlogd config check --online` against Azurite: a good key, a wrong key, a read-only
//! SAS, an expired SAS and an unreachable endpoint each get their own message and exit
//! code; a SAS close to its expiry and unused Azure variables are warned about.

use crate::common;

use common::{ACCOUNT_KEY, Azurite, RunOutput, TestEnv, account_sas_for, unique_container};

const FAR: &str = "2099-01-01T00:00:00Z";

fn check(az: &Azurite, sas: &str, container: &str, extra: &[&str]) -> RunOutput {
    let env = TestEnv::new().with_sas(sas);
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n",
        az.container_url(container)
    ));
    let mut args = vec!["config", "check", "--online"];
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn a_good_key_reaches_authenticates_and_may_write() {
    let az = Azurite::shared();
    let container = unique_container("online-good");
    az.create_container(&container);
    let out = check(
        az,
        &account_sas_for(ACCOUNT_KEY, "racwdl", FAR),
        &container,
        &[],
    );
    out.assert_code(0);
    for line in [
        "reachable      yes",
        "authenticated  yes",
        "container      exists",
        "can write      yes (the SAS allows it; --write-test to try)",
        "online         OK: devlogd can back up to",
    ] {
        assert!(out.stdout.contains(line), "{line}:\n{}", out.stdout);
    }
    // The write test leaves nothing behind.
    let out = check(
        az,
        &account_sas_for(ACCOUNT_KEY, "racwdl", FAR),
        &container,
        &["--write-test"],
    );
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("can write      yes (a probe blob was written and deleted)"),
        "{}",
        out.stdout
    );
    assert!(
        az.list_blobs(&container).is_empty(),
        "the probe blob stayed"
    );
}

#[test]
fn a_missing_container_is_said_before_a_push_creates_it() {
    let az = Azurite::shared();
    let container = unique_container("online-missing");
    let out = check(az, &az.account_sas(), &container, &[]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("container      does not exist yet: the first push creates it"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_wrong_key_exits_4() {
    let az = Azurite::shared();
    let container = unique_container("online-wrong");
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let out = check(az, &account_sas_for(wrong, "racwdl", FAR), &container, &[]);
    out.assert_code(4);
    assert!(out.stdout.contains("authenticated  NO"), "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "the remote refused the credentials from the SAS token in AZURE_STORAGE_SAS_TOKEN"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_read_only_sas_exits_6_without_writing() {
    let az = Azurite::shared();
    let container = unique_container("online-ro");
    az.create_container(&container);
    let out = check(
        az,
        &account_sas_for(ACCOUNT_KEY, "rl", FAR),
        &container,
        &[],
    );
    out.assert_code(6);
    assert!(out.stdout.contains("authenticated  yes"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("can write      NO: the SAS allows only sp=rl"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(
            "the credentials can read and list but cannot write: the SAS allows only sp=rl"
        ),
        "{}",
        out.stderr
    );
    assert!(az.list_blobs(&container).is_empty());
}

#[test]
fn an_expired_sas_exits_5_and_says_when() {
    let az = Azurite::shared();
    let container = unique_container("online-expired");
    let out = check(
        az,
        &account_sas_for(ACCOUNT_KEY, "racwdl", "2020-01-01T00:00:00Z"),
        &container,
        &[],
    );
    out.assert_code(5);
    assert!(
        out.stderr
            .contains("the SAS token expired at 2020-01-01 00:00 UTC ("),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sas_expiring_within_a_week_is_warned_about() {
    let az = Azurite::shared();
    let container = unique_container("online-soon");
    let se = common::expiry_in(time::Duration::days(3));
    let out = check(
        az,
        &account_sas_for(ACCOUNT_KEY, "racwdl", &se),
        &container,
        &[],
    );
    out.assert_code(0);
    assert!(
        out.stdout.contains("WARNING: the SAS token expires at "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("(in 2 days") || out.stdout.contains("(in 3 days"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_unreachable_endpoint_exits_1() {
    let port = common::dead_port();
    let env = TestEnv::new().with_sas(account_sas_for(ACCOUNT_KEY, "racwdl", FAR));
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{port}/devstoreaccount1/nobody\"\n"
    ));
    let out = env.run(&["config", "check", "--online"]);
    out.assert_code(1);
    assert!(out.stdout.contains("reachable      NO"), "{}", out.stdout);
    assert!(
        out.stderr.contains("cannot reach http://127.0.0.1:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("check remote.url and the network"),
        "{}",
        out.stderr
    );
}

#[test]
fn azure_variables_without_a_remote_url_are_warned_about() {
    let env = TestEnv::new();
    let out = env
        .devlogd()
        .args(["config", "check"])
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=x;AccountKey=eA==",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("WARNING: AZURE_STORAGE_CONNECTION_STRING is set, but no remote.url is configured: devlogd mirrors to the local directory"),
        "{stdout}"
    );
    assert!(!stdout.contains("eA=="), "{stdout}");
}

#[test]
fn another_machines_files_on_the_prefix_in_backup_mode_are_warned_about() {
    let az = Azurite::shared();
    let container = unique_container("online-writers");
    let config = format!(
        "[remote]\nurl = \"{}/journal\"\n",
        az.container_url(&container)
    );
    let (a, b) = (
        TestEnv::new().with_sas(az.account_sas()),
        TestEnv::new().with_sas(az.account_sas()),
    );
    for env in [&a, &b] {
        env.write_config(&config);
    }
    a.write_file("notes.md", "A's\n");
    a.run(&["push"]).assert_code(0);

    // A's own files are no warning; B sees A's, with the host that wrote them.
    let out = a.run(&["config", "check", "--online"]);
    out.assert_code(0);
    assert!(
        !out.stdout.contains("another machine wrote"),
        "{}",
        out.stdout
    );
    let out = b.run(&["config", "check", "--online"]);
    out.assert_code(0);
    let host = devlogd::names::safe_host(&devlogd::machine::hostname());
    assert!(
        out.stdout.contains(&format!(
            "{container}/journal holds 1 file(s) another machine wrote ({host})"
        )) && out.stdout.contains("set sync.mode = \"two-way\""),
        "{}",
        out.stdout
    );
    // In two-way mode that is the point: no warning.
    b.write_config(&format!("{config}\n[sync]\nmode = \"two-way\"\n"));
    let out = b.run(&["config", "check", "--online"]);
    out.assert_code(0);
    assert!(
        !out.stdout.contains("another machine wrote"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_container_sas_for_a_container_that_does_not_exist_is_no_ok() {
    let az = Azurite::shared();
    let container = unique_container("online-nocont");
    let sas = common::container_sas_for(ACCOUNT_KEY, &container, "racwdl", FAR);
    let out = check(az, &sas, &container, &[]);
    out.assert_code(6);
    assert!(
        out.stderr
            .contains("does not exist and this SAS cannot create it"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("online         OK"), "{}", out.stdout);
    // Once the container is there, the same SAS is fine.
    az.create_container(&container);
    let out = check(az, &sas, &container, &[]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("container      exists"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_directory_remote_that_is_missing_or_unwritable_is_no_ok() {
    let env = TestEnv::new();
    let dir = env.root().join("nas");
    env.write_config(&format!("[remote]\nurl = \"file://{}\"\n", dir.display()));
    let out = env.run(&["config", "check", "--online"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("does not exist (is it mounted?)"),
        "{}",
        out.stderr
    );
    std::fs::create_dir_all(&dir).unwrap();
    let out = env.run(&["config", "check", "--online"]);
    out.assert_code(0);
    assert!(out.stdout.contains("online         OK"), "{}", out.stdout);
    // Credentials in the file do nothing for a directory remote: said.
    std::fs::write(
        env.config_home().join("devlog/credentials"),
        "AZURE_STORAGE_SAS_TOKEN=sv=x&sig=y\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let file = env.config_home().join("devlog/credentials");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = env.run(&["config", "check"]);
    assert!(
        out.stdout
            .contains("WARNING: AZURE_STORAGE_SAS_TOKEN is set in "),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}
