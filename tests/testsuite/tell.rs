//! What devlogd tells the user when it matters (issue "tell the user"): every unsafe verdict
//! names the way out that keeps data first (an accidental mass delete: restore before
//! `--allow-deletes`; a deleted root; an expired SAS), files excluded after they were pushed
//! are not counted as backed up, a scrape with no daemon says so (`devlogd_up 0`), and the
//! `[alert] command` runs when the verdict stays unsafe and again when it is safe. Each with
//! the real daemon against Azurite or the built-in mirror.

use crate::common;

use common::daemon::{Daemon, running};
use common::status::{status, until_verdict};
use common::{ACCOUNT_KEY, Azurite, TestEnv, account_sas_for, unique_container, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn azure_env(az: &Azurite, sas: String, extra: &str) -> TestEnv {
    let container = unique_container("tell");
    let env = TestEnv::new().with_sas(sas);
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n[sync]\ndebounce_ms = 50\nmax_delay_ms = 200\n{extra}",
        az.container_url(&container)
    ));
    env
}

/// A journal backed up to a directory remote (the built-in mirror is "not off this machine").
pub(crate) fn directory_env() -> TestEnv {
    let env = TestEnv::new();
    let remote = env.root().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    env.write_config(&format!(
        "[remote]\nurl = \"file://{}\"\n[sync]\ndebounce_ms = 50\nmax_delay_ms = 200\n",
        remote.display()
    ));
    env
}

#[test]
fn an_accidental_mass_delete_offers_restore_before_deleting_remotely() {
    let env = directory_env();
    for i in 0..60 {
        env.write_file(&format!("entries/{i:02}.md"), format!("entry {i}\n"));
    }
    let _d = running(&env, WAIT);
    std::fs::remove_dir_all(env.journal().join("entries")).unwrap();
    let s = until_verdict(&env, "held_deletes", WAIT);
    let text = s.verdict.text.as_str();
    let restore = text.find("devlogd restore brings them back");
    let allow = text.find("--allow-deletes");
    assert!(
        restore.is_some() && allow.is_some() && restore < allow,
        "the undo must come first: {text}"
    );
    // The undo works as said: everything is back, and the verdict with it.
    env.run(&["restore"]).assert_code(0);
    assert_eq!(common::tree(&env.journal()).len(), 60);
    wait_for(WAIT, "backed up again", || {
        let s = status(&env);
        (s.verdict.state == "backed_up").then_some(())
    });
    // Deleted on purpose: the report names the way back.
    std::fs::remove_dir_all(env.journal().join("entries")).unwrap();
    until_verdict(&env, "held_deletes", WAIT);
    let out = env.run(&["ctl", "push", "--allow-deletes"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("not meant? devlogd restore --at 20"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_deleted_journal_root_is_not_backed_up_and_names_restore() {
    let env = TestEnv::new();
    env.write_file("a.md", "a\n");
    env.write_file("b.md", "b\n");
    let _d = running(&env, WAIT);
    std::fs::remove_dir_all(env.journal()).unwrap();
    let s = until_verdict(&env, "root_missing", WAIT);
    let text = s.verdict.text.as_str();
    assert!(
        text.starts_with("NOT BACKED UP: the journal root is gone"),
        "{text}"
    );
    assert!(text.contains("devlogd restore brings it back"), "{text}");
    assert!(!s.verdict.safe);
}

#[test]
fn an_expired_sas_is_a_verdict_of_its_own_with_its_fix() {
    let az = Azurite::shared();
    let env = azure_env(
        az,
        account_sas_for(ACCOUNT_KEY, "racwdl", "2020-01-01T00:00:00Z"),
        "",
    );
    env.write_file("a.md", "a\n");
    let _d = Daemon::start(&env);
    let s = until_verdict(&env, "credentials_expired", WAIT);
    let text = s.verdict.text.as_str();
    assert!(
        text.starts_with("NOT BACKED UP: the SAS token expired at 2020-01-01 00:00 UTC"),
        "{text}"
    );
    assert!(
        text.contains("make a new one with a later expiry (se)"),
        "{text}"
    );
}

#[test]
fn files_excluded_after_they_were_pushed_are_not_counted_as_backed_up() {
    let env = directory_env();
    env.write_file("a.md", "a\n");
    env.write_file("b.md", "b\n");
    env.write_file("private.md", "p\n");
    let _d = running(&env, WAIT);
    env.write_file(".devlogignore", "private.md\n");
    env.run(&["ctl", "reload"]).assert_code(0);
    let s = wait_for(WAIT, "the excluded file in the status", || {
        let s = status(&env);
        (s["excluded_in_index"] == 1 && s.settled()).then_some(s)
    });
    assert!(
        s.verdict.text.contains("All 2 files backed up"),
        "{}",
        s.verdict.text
    );
    let warning = s.verdict.warnings.join("\n");
    assert!(
        warning.contains("1 file pushed before is now excluded")
            && warning.contains("(first: private.md)"),
        "{warning}"
    );
}

#[test]
fn a_scrape_with_no_daemon_says_it_is_down() {
    let env = TestEnv::new();
    let out = env.run(&["ctl", "status", "--prometheus"]);
    out.assert_code(0);
    assert!(out.stdout.contains("devlogd_up 0\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("devlogd_backed_up 0\n"),
        "{}",
        out.stdout
    );
    env.write_file("a.md", "a\n");
    let _d = running(&env, WAIT);
    let out = env.run(&["ctl", "status", "--prometheus"]);
    out.assert_code(0);
    assert!(out.stdout.contains("devlogd_up 1\n"), "{}", out.stdout);
}

/// The alert command's runs: one `state|safe|verdict` line each.
fn alert_lines(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn alert_config(file: &std::path::Path) -> String {
    format!(
        "\n[alert]\ncommand = 'printf \"%s|%s|%s\\n\" \"$DEVLOGD_VERDICT_STATE\" \"$DEVLOGD_SAFE\" \"$DEVLOGD_VERDICT\" >> {}'\nafter_s = 2\n",
        file.display()
    )
}

#[test]
fn the_alert_runs_once_when_the_remote_is_unreachable_and_once_when_it_is_back() {
    let az = Azurite::shared();
    let record = tempfile::tempdir().unwrap();
    let file = record.path().join("alerts");
    // A port nobody listens on: never reached.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = TestEnv::new().with_sas(az.account_sas());
    let write = |url: &str| {
        env.write_config(&format!(
            "[remote]\nurl = \"{url}\"\n[sync]\ndebounce_ms = 50\n{}",
            alert_config(&file)
        ))
    };
    write(&format!(
        "http://127.0.0.1:{port}/devstoreaccount1/nobody/journal"
    ));
    env.write_file("a.md", "a\n");
    let _d = Daemon::start(&env);
    let lines = wait_for(WAIT, "the alert", || {
        let l = alert_lines(&file);
        (!l.is_empty()).then_some(l)
    });
    // Not safe, whichever way it says so first (retrying, then never reached).
    assert!(
        lines[0].contains("|0|")
            && (lines[0].contains("cannot reach the remote")
                || lines[0].starts_with("never_reached|0|")),
        "{lines:?}"
    );
    // When it said "retrying" first, it runs again once the verdict has settled on what is
    // wrong: the last unsafe alert names the remote that is not reached.
    let lines = wait_for(WAIT, "the alert naming the unreached remote", || {
        let l = alert_lines(&file);
        l.iter()
            .any(|l| l.starts_with("never_reached|0|NOT BACKED UP"))
            .then_some(l)
    });
    // Once per state, however long it stays so.
    let s = status(&env);
    assert!(!s.verdict.safe);
    let states: Vec<&str> = lines.iter().filter_map(|l| l.split('|').next()).collect();
    let mut unique = states.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), states.len(), "{lines:?}");
    let unsafe_runs = lines.len();
    // Back: a reachable remote; the all-clear runs once.
    write(&format!(
        "{}/journal",
        az.container_url(&unique_container("tell-alert"))
    ));
    env.run(&["ctl", "reload"]).assert_code(0);
    let lines = wait_for(WAIT, "the all-clear", || {
        let l = alert_lines(&file);
        l.iter().any(|l| l.contains("|1|")).then_some(l)
    });
    assert_eq!(lines.len(), unsafe_runs + 1, "{lines:?}");
    assert!(lines[unsafe_runs].contains("|1|"), "{lines:?}");
}

#[test]
fn the_alert_names_an_expired_sas() {
    let az = Azurite::shared();
    let record = tempfile::tempdir().unwrap();
    let file = record.path().join("alerts");
    let env = azure_env(
        az,
        account_sas_for(ACCOUNT_KEY, "racwdl", "2020-01-01T00:00:00Z"),
        &alert_config(&file),
    );
    env.write_file("a.md", "a\n");
    // config check shows that an alert is set, not the command's arguments.
    let out = env.run(&["config", "check"]);
    assert!(
        out.stdout
            .contains("alert          runs printf … when not safe for 2 s"),
        "{}",
        out.stdout
    );
    let _d = Daemon::start(&env);
    let lines = wait_for(WAIT, "the alert", || {
        let l = alert_lines(&file);
        (!l.is_empty()).then_some(l)
    });
    assert!(
        lines[0].starts_with("credentials_expired|0|NOT BACKED UP: the SAS token expired"),
        "{lines:?}"
    );
}

#[test]
fn config_init_writes_a_config_and_a_private_credentials_template_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let dir = env.config_home().join("devlog");
    let _ = std::fs::remove_dir_all(&dir);
    // A bad URL writes nothing.
    let out = env.run(&["config", "init", "--url", "ftp://nope"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--url"), "{}", out.stderr);
    assert!(!dir.join("config.toml").exists());

    let url = "https://myaccount.blob.core.windows.net/journal/laptop";
    let out = env.run(&["config", "init", "--url", url]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("devlogd config check --online"),
        "{}",
        out.stdout
    );
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains(&format!("url = \"{url}\"")), "{config}");
    let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("credentials"), 0o600);
    assert_eq!(mode("config.toml"), 0o600);
    // What it wrote loads; the one thing left is named: the credentials, and where.
    let out = env.run(&["config", "check"]);
    assert!(out.stdout.contains("config.toml (ok)"), "{}", out.stdout);
    assert!(out.stdout.contains(url), "{}", out.stdout);
    assert!(
        out.stderr.contains("no credentials for") && out.stderr.contains("credentials"),
        "{}",
        out.stderr
    );
    // Again: both kept as they are.
    std::fs::write(dir.join("credentials"), "AZURE_STORAGE_SAS_TOKEN=mine\n").unwrap();
    let out = env.run(&["config", "init"]);
    out.assert_code(0);
    assert_eq!(out.stdout.matches("kept ").count(), 2, "{}", out.stdout);
    assert_eq!(
        std::fs::read_to_string(dir.join("credentials")).unwrap(),
        "AZURE_STORAGE_SAS_TOKEN=mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("config.toml")).unwrap(),
        config
    );
}

/// `devlogd ARGS` run from `dir`.
fn run_in(env: &TestEnv, dir: &std::path::Path, args: &[&str]) -> common::RunOutput {
    let out = env
        .devlogd()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run devlogd");
    common::RunOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn history_takes_a_path_relative_to_the_current_directory() {
    let env = directory_env();
    env.write_file("entries/2026/12/today.md", "v1\n");
    env.run(&["push"]).assert_code(0);
    env.write_file("entries/2026/12/today.md", "v2\n");
    env.run(&["push"]).assert_code(0);
    let dir = env.journal().join("entries/2026/12");
    let out = run_in(&env, &dir, &["history", "today.md", "--json"]);
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["path"], "entries/2026/12/today.md", "{v:#}");
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(2), "{v:#}");
    // Who wrote each version, for people: the host its writer named, beside the id.
    let host = devlogd::names::safe_host(&devlogd::machine::hostname());
    assert_eq!(v["versions"][0]["host"], host.as_str(), "{v:#}");
    let text = run_in(&env, &dir, &["history", "today.md"]);
    assert!(
        text.stdout.contains(&format!("{host} (")),
        "{}",
        text.stdout
    );
    // Outside the journal, a path is the journal's own, as before.
    let out = run_in(
        &env,
        env.root(),
        &["history", "entries/2026/12/today.md", "--json"],
    );
    out.assert_code(0);
    let out = run_in(&env, &dir, &["history", "../../../../outside.md"]);
    out.assert_code(2);
}

#[test]
fn restore_at_a_time_before_the_first_backup_names_the_oldest_version() {
    let env = directory_env();
    env.write_file("a.md", "a\n");
    env.run(&["push"]).assert_code(0);
    let to = env.root().join("then");
    let out = env.run(&[
        "restore",
        "--at",
        "2001-01-01T00:00:00Z",
        "--to",
        to.to_str().unwrap(),
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("nothing was backed up to")
            && out.stderr.contains("as of 2001-01-01T00:00:00Z")
            && out.stderr.contains("the oldest version there is from 20"),
        "{}",
        out.stderr
    );
}

#[test]
fn verbose_shows_devlogds_decisions_and_very_verbose_the_http_requests() {
    let az = Azurite::shared();
    let env = azure_env(az, az.account_sas(), "");
    env.write_file("a.md", "a\n");
    let out = env.run(&["-v", "push"]);
    out.assert_code(0);
    // Decisions in words, not Rust structs.
    assert!(out.stderr.contains("a.md: upload: new"), "{}", out.stderr);
    assert!(!out.stderr.contains("Upload {"), "{}", out.stderr);
    let http = |text: &str| {
        text.lines().any(|l| {
            l.contains("DEBUG")
                && (l.contains("azure_core")
                    || l.contains("reqwest")
                    || l.contains("hyper_util")
                    || l.contains("typespec"))
        })
    };
    assert!(!http(&out.stderr), "-v shows HTTP traffic:\n{}", out.stderr);
    env.write_file("b.md", "b\n");
    let out = env.run(&["-vv", "push"]);
    out.assert_code(0);
    assert!(
        http(&out.stderr),
        "-vv shows no HTTP traffic:\n{}",
        out.stderr
    );
}

#[test]
fn service_install_names_a_daemon_already_running_by_hand() {
    let env = TestEnv::new();
    env.write_file("a.md", "a\n");
    let daemon = running(&env, WAIT);
    let out = env.run(&["service", "install"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("devlogd is already running, pid")
            && out.stderr.contains("outside the service")
            && out.stderr.contains("devlogd ctl stop"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("configuration"), "{}", out.stderr);
    // Nothing was written: no unit for a service that could not start.
    let unit = env.config_home().join("systemd/user/devlogd.service");
    assert!(!unit.exists(), "{}", unit.display());
    drop(daemon);
}

#[test]
fn every_flag_and_argument_in_help_says_what_it_is() {
    let env = TestEnv::new();
    // Every command of both binaries, found through their own help (`Commands:`).
    let mut checked = Vec::new();
    for program in ["devlogd", "devlog"] {
        every_help_line_is_described(&env, program, &[], &mut checked);
    }
    for must in [
        "devlogd ctl push",
        "devlogd config check",
        "devlog show",
        "devlog edit",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} not checked: {checked:?}"
        );
    }
}

/// `PROGRAM SUB… --help`: no flag, argument or command without a description; then the same
/// for each of its commands.
fn every_help_line_is_described(
    env: &TestEnv,
    program: &str,
    sub: &[String],
    checked: &mut Vec<String>,
) {
    let mut command = if program == "devlog" {
        env.devlog()
    } else {
        env.devlogd()
    };
    let out = command.args(sub).arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{program} {sub:?} --help\n{stdout}");
    let bare = bare_flag_line();
    let lines: Vec<&str> = stdout.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        // A flag or argument alone on its line, with no description on the next one.
        let next = lines.get(i + 1).copied().unwrap_or("");
        let described_below = next.starts_with("          ");
        assert!(
            !bare(line) || described_below,
            "{program} {sub:?}: `{}` has no description\n{stdout}",
            line.trim(),
        );
    }
    let commands: Vec<String> = lines
        .iter()
        .skip_while(|l| **l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.first().is_some_and(|w| *w != "help"))
        .map(|words| {
            assert!(
                words.len() > 1,
                "{program} {sub:?}: command `{}` has no description\n{stdout}",
                words.join(" ")
            );
            words[0].to_string()
        })
        .collect();
    checked.push(
        std::iter::once(program.to_string())
            .chain(sub.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
    );
    for name in commands {
        let mut deeper = sub.to_vec();
        deeper.push(name);
        every_help_line_is_described(env, program, &deeper, checked);
    }
}

/// `  --json`, `  <PATH>`, `  -v, --verbose <N>`: a flag or argument with nothing after it.
fn bare_flag_line() -> impl Fn(&str) -> bool {
    |line: &str| {
        let t = line.trim_end();
        let body = t.trim_start();
        let indented = t.len() > body.len() && t.len() - body.len() <= 6;
        if !indented {
            return false;
        }
        let mut words = body.split_whitespace();
        let first_is_flag =
            |w: &str| w.starts_with('-') || (w.starts_with('<') && w.ends_with('>'));
        let all_flag_words = body.split_whitespace().all(|w| {
            let w = w.trim_end_matches(',');
            first_is_flag(w) || (w.starts_with('<') && w.ends_with(">...")) || w.starts_with("[")
        });
        words.next().is_some_and(first_is_flag) && all_flag_words
    }
}

#[test]
fn the_readmes_completion_commands_work_on_a_fresh_home() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lines: Vec<&str> = readme
        .lines()
        .filter(|l| {
            l.starts_with("mkdir -p ~/.local/share/bash-completion")
                || l.starts_with("devlogd completions bash >")
        })
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "the README's completion block changed: {lines:?}"
    );
    let env = TestEnv::new();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_devlogd"))
        .parent()
        .unwrap();
    for line in lines {
        let command = line.split("   #").next().unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .env_clear()
            .env("HOME", env.home())
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let script = env
        .home()
        .join(".local/share/bash-completion/completions/devlogd");
    assert!(std::fs::read_to_string(script).unwrap().contains("devlogd"));
}

#[test]
fn a_push_with_an_expired_sas_says_it_expired_and_exits_5() {
    let az = Azurite::shared();
    let env = azure_env(
        az,
        account_sas_for(ACCOUNT_KEY, "racwdl", "2020-01-01T00:00:00Z"),
        "",
    );
    env.write_file("a.md", "a\n");
    let out = env.run(&["push"]);
    out.assert_code(5);
    assert!(says_the_sas_expired(&out.stderr), "{}", out.stderr);
}

/// The line every command prints for a SAS that expired on 2020-01-01 (exit 5).
pub fn says_the_sas_expired(stderr: &str) -> bool {
    stderr.contains("refused the SAS token: it expired at 2020-01-01T00:00:00Z")
        && stderr.contains("make a new one with a later expiry (se)")
}

#[test]
fn a_read_only_sas_and_a_missing_container_name_the_missing_permission() {
    let az = Azurite::shared();
    let env = azure_env(
        az,
        account_sas_for(ACCOUNT_KEY, "rl", "2099-01-01T00:00:00Z"),
        "",
    );
    let out = env.run(&["config", "check", "--online"]);
    out.assert_code(6);
    assert!(
        out.stderr
            .contains("its permissions sp=rl include neither create (c) nor write (w)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_container_deleted_under_a_running_daemon_is_made_again_and_filled() {
    let az = Azurite::shared();
    let container = unique_container("tell-gone");
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n[sync]\ndebounce_ms = 50\nmax_delay_ms = 200\n",
        az.container_url(&container)
    ));
    env.write_file("a.md", "a\n");
    let _d = running(&env, WAIT);
    az.delete_container(&container);
    // The next change finds the container gone: the daemon makes it again, and a full push
    // puts back what was in it.
    env.write_file("b.md", "b\n");
    wait_for(WAIT, "b.md in a new container", || {
        az.get_blob(&container, "journal/b.md").map(|_| ())
    });
    env.run(&["ctl", "push", "--all"]).assert_code(0);
    assert_eq!(
        az.get_blob(&container, "journal/a.md").as_deref(),
        Some(&b"a\n"[..])
    );
}

#[test]
fn devlog_list_is_newest_first_within_one_second() {
    let env = TestEnv::new();
    let mut ids = Vec::new();
    for text in ["Day 1", "Day 2", "Day 3"] {
        let out = env.devlog().args(["new", "-m", text]).output().unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ids.push(stdout.split_whitespace().next().unwrap().to_string());
    }
    let list = || {
        let out = env.devlog().args(["list", "--json"]).output().unwrap();
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        listed
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    ids.reverse();
    assert_eq!(list(), ids);
    // A restore or a pull gives the files times of its own (walkthrough finding 6): here the
    // oldest entry's file is made the newest. The order stays the entries' own.
    let files: Vec<std::path::PathBuf> = walk_files(&env.journal().join("entries"));
    let base = std::time::SystemTime::now();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let rank = ids
            .iter()
            .position(|id| text.contains(id.as_str()))
            .unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(base + Duration::from_secs(rank as u64 + 1))
            .unwrap();
    }
    assert_eq!(list(), ids);
}

/// Every file below `dir`.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_copy_restore_kept_is_marked_in_devlog_list_and_never_shown_as_the_entry() {
    let env = directory_env();
    let out = env
        .devlog()
        .args(["new", "-m", "Release notes v1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (id, path) = stdout.trim().split_once("  ").unwrap();
    let path = std::path::PathBuf::from(path);
    env.run(&["push"]).assert_code(0);
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, original.replace("v1", "v2 (not pushed)")).unwrap();
    env.run(&["restore", "--overwrite"]).assert_code(0);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(
        &env.devlog()
            .args(["list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let with_id: Vec<&serde_json::Value> = listed.iter().filter(|e| e["id"] == id).collect();
    assert_eq!(with_id.len(), 2, "{listed:?}");
    assert_eq!(
        with_id
            .iter()
            .filter(|e| e["kept_local_copy"] == true)
            .count(),
        1
    );
    let table = env.devlog().args(["list"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&format!("{id} (local copy kept by restore)")),
        "{table}"
    );
    let shown = env.devlog().args(["show", id]).output().unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Release notes v1"));
}
