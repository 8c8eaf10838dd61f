//! What users of any CLI expect, and what keeps them in control: `ctl` with a broken
//! config file, credentials rotated with a reload, completions, man pages, `--version`, and
//! one JSON object on stdout under `--json`, also when the command fails.

use crate::common;

use common::daemon::Daemon;
use common::{ACCOUNT, ACCOUNT_KEY, Azurite, RunOutput, TestEnv, unique_container, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

fn json(out: &RunOutput) -> serde_json::Value {
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON object on stdout:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

fn write_private(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn ctl_reaches_the_daemon_whatever_the_config_file_says() {
    let env = TestEnv::new();
    let mut daemon = Daemon::start(&env);
    // A typo while the daemon runs.
    env.write_config("[sync]\ndebounce_msx = 300\n");
    env.run(&["config", "check"]).assert_code(2);

    let status = env.run(&["ctl", "status", "--json"]);
    status.assert_code(0);
    assert_eq!(json(&status)["pid"], daemon.pid());

    // The daemon refuses the reload and says why; the old configuration stays.
    let reload = env.run(&["ctl", "reload"]);
    reload.assert_code(2);
    assert!(
        reload.stderr.contains("reload refused") && reload.stderr.contains("debounce_msx"),
        "{}",
        reload.stderr
    );
    env.run(&["ctl", "status"]).assert_code(0);

    let stop = env.run(&["ctl", "stop"]);
    stop.assert_code(0);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let gone = env.run(&["ctl", "status"]);
    gone.assert_code(3);
    assert!(gone.stderr.contains("is not running"), "{}", gone.stderr);
}

#[test]
fn a_rotated_credentials_file_takes_effect_on_reload() {
    let az = Azurite::shared();
    let container = unique_container("rotate");
    az.create_container(&container);
    let env = TestEnv::new();
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        az.container_url(&container)
    ));
    let creds = env.config_home().join("devlog/credentials");
    let wrong =
        "QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2U=";
    write_private(
        &creds,
        &format!("AZURE_STORAGE_ACCOUNT={ACCOUNT}\nAZURE_STORAGE_ACCOUNT_KEY={wrong}\n"),
    );
    env.write_file("a.md", "after rotation");
    let _daemon = Daemon::start(&env);
    let refused = env.run(&["ctl", "push"]);
    refused.assert_code(4);
    assert!(az.get_blob(&container, "a.md").is_none());

    // Rotate the key in the file; no restart.
    write_private(
        &creds,
        &format!("AZURE_STORAGE_ACCOUNT={ACCOUNT}\nAZURE_STORAGE_ACCOUNT_KEY={ACCOUNT_KEY}\n"),
    );
    env.run(&["ctl", "reload"]).assert_code(0);
    env.run(&["ctl", "push"]).assert_code(0);
    assert_eq!(
        az.get_blob(&container, "a.md").as_deref(),
        Some(&b"after rotation"[..])
    );

    // The 0600 check still holds on reload.
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = env.run(&["ctl", "reload"]);
    loose.assert_code(2);
    assert!(loose.stderr.contains("chmod 600"), "{}", loose.stderr);
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let env = TestEnv::new();
    for (binary, sub) in [("devlogd", "ctl"), ("devlog", "list")] {
        for shell in ["bash", "zsh", "fish"] {
            let out = if binary == "devlogd" {
                env.devlogd().args(["completions", shell]).output().unwrap()
            } else {
                env.devlog().args(["completions", shell]).output().unwrap()
            };
            assert!(out.status.success(), "{binary} completions {shell}");
            let script = String::from_utf8(out.stdout).unwrap();
            assert!(
                script.contains(binary) && script.contains(sub),
                "{binary} {shell}:\n{script}"
            );
            if shell == "bash" {
                let path = env.root().join(format!("{binary}.bash"));
                std::fs::write(&path, &script).unwrap();
                let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
                assert!(
                    check.status.success(),
                    "{}",
                    String::from_utf8_lossy(&check.stderr)
                );
            }
        }
    }
    env.run(&["completions", "tcsh"]).assert_code(2);
}

#[test]
fn man_pages_for_every_command() {
    let env = TestEnv::new();
    let dir = env.root().join("man/man1");
    let out = env.run(&["man", dir.to_str().unwrap()]);
    out.assert_code(0);
    for page in [
        "devlogd.1",
        "devlogd-run.1",
        "devlogd-push.1",
        "devlogd-ctl.1",
        "devlogd-ctl-status.1",
        "devlogd-ctl-push.1",
        "devlogd-service-install.1",
        "devlogd-completions.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}\n{}", out.stdout));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
        assert!(out.stdout.contains(page), "{}", out.stdout);
    }
    let status = std::fs::read_to_string(dir.join("devlogd-ctl-status.1")).unwrap();
    assert!(status.contains("json"), "{status}");
    // Beyond --help: how it ends, what it reads, where its files are, how to use it.
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
    ] {
        assert!(status.contains(section), "{section} missing:\n{status}");
    }
    assert!(status.contains("\\-\\-prometheus"), "{status}");
    let push = std::fs::read_to_string(dir.join("devlogd-push.1")).unwrap();
    assert!(
        push.contains("AZURE_STORAGE_SAS_TOKEN") && push.contains("config.toml"),
        "{push}"
    );
    // The SYNOPSIS says what each option takes: the choices, the arguments.
    let synopsis = |page: &str| {
        page.split(".SH SYNOPSIS\n")
            .nth(1)
            .and_then(|s| s.split(".SH").next())
            .unwrap_or_default()
            .to_string()
    };
    let push_synopsis = synopsis(&push);
    assert!(
        push_synopsis.contains("[\\fB\\-\\-on\\-conflict\\fR \\fIkeep\\-both|overwrite|skip\\fR]"),
        "{push_synopsis}"
    );
    let restore = std::fs::read_to_string(dir.join("devlogd-restore.1")).unwrap();
    let restore_synopsis = synopsis(&restore);
    assert!(
        restore_synopsis.contains("[\\fB\\-\\-at\\fR \\fITIME\\fR]")
            && restore_synopsis.contains("[\\fIPATHS\\fR]..."),
        "{restore_synopsis}"
    );
    let out = env
        .devlog()
        .args(["man", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.join("devlog-new.1").exists());
}

#[test]
fn version_names_the_git_commit() {
    let env = TestEnv::new();
    let out = env.run(&["--version"]);
    out.assert_code(0);
    let root = env!("CARGO_MANIFEST_DIR");
    let head = Command::new("git")
        .args(["-C", root, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let commit = head.unwrap_or_else(|| "unknown".into());
    assert_eq!(
        out.stdout.trim(),
        format!("devlogd {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
    let out = env.devlog().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&commit));
}

#[test]
fn json_commands_print_one_object_on_failure_too() {
    let env = TestEnv::new();
    // No daemon: ctl status --json says so in JSON, exit 3.
    let out = env.run(&["ctl", "status", "--json"]);
    out.assert_code(3);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["code"], 3);
    assert!(v["error"].as_str().unwrap().contains("not running"), "{v}");

    // verify --json against a directory remote that is missing: the failure as JSON.
    env.write_config(&format!(
        "[remote]\nurl = \"file://{}/gone\"\n",
        env.root().display()
    ));
    env.write_file("a.md", "a");
    let out = env.run(&["verify", "--json"]);
    assert_ne!(out.code(), Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["code"], out.code().unwrap());

    // verify --json with a difference: the report, exit 1.
    let mirror = env.root().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    env.write_config(&format!(
        "[remote]\nurl = \"file://{}\"\n",
        mirror.display()
    ));
    let out = env.run(&["verify", "--json"]);
    out.assert_code(1);
    let v = json(&out);
    assert!(v.is_object() && v.get("error").is_none(), "{v}");

    // ctl push --no-wait --json: the daemon's answer as JSON.
    let _daemon = Daemon::start(&env);
    let out = env.run(&["ctl", "push", "--no-wait", "--json"]);
    out.assert_code(0);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["message"], "queued", "{v}");
    wait_for(Duration::from_secs(30), "the queued push", || {
        mirror.join("a.md").exists().then_some(())
    });
}

/// `devlog` is the `devlogd` binary under another name: the small `devlog` runs the
/// `devlogd` beside it as `devlog` (whatever it is called), and only that one.
#[test]
fn devlog_runs_the_devlogd_beside_it_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("devlog");
    std::fs::copy(env!("CARGO_BIN_EXE_devlog"), &alone).unwrap();
    let out = Command::new(&alone).arg("--version").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot run {}",
            dir.path().join("devlogd").display()
        )) && stderr.contains("install both"),
        "{stderr}"
    );

    // A link with another name still runs the journal command line.
    let link = dir.path().join("dl");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_devlog"), &link).unwrap();
    let out = Command::new(&link).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("Usage: devlog "), "{help}");
}
