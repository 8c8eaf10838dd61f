//! What the second walkthrough found on the command line (docs/walkthrough.md, findings 2,
//! 12, 13, 14, 15 and 16): each as the user meets it — the message, the help text, the man
//! page, the exit code.

use crate::common;

use crate::tell::directory_env;
use common::daemon::{Daemon, running};
use common::{ACCOUNT_KEY, Azurite, TestEnv, account_sas_for, unique_container};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A journal backed up to a new container of the shared Azurite with `sas`.
fn azure_env(az: &Azurite, sas: String) -> (TestEnv, String) {
    let container = unique_container("walk");
    let env = TestEnv::new().with_sas(sas);
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n[sync]\ndebounce_ms = 50\nmax_delay_ms = 200\n",
        az.container_url(&container)
    ));
    (env, container)
}

/// Finding 2: a read-only SAS is "accepted but may not write" (exit 6), and the message
/// names what the token lacks, as `config check --online` does.
#[test]
fn a_push_with_a_read_only_sas_names_the_missing_permission_and_exits_6() {
    let az = Azurite::shared();
    let (env, container) = azure_env(
        az,
        account_sas_for(ACCOUNT_KEY, "rl", "2099-01-01T00:00:00Z"),
    );
    az.create_container(&container);
    env.write_file("a.md", "a\n");
    let check = |out: &common::RunOutput, what: &str| {
        out.assert_code(6);
        assert!(
            out.stderr.contains("the SAS allows only sp=rl")
                && out.stderr.contains("write (w)")
                && out.stderr.contains("create (c)"),
            "{what}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("not expired"),
            "{what}: the token is not expired: {}",
            out.stderr
        );
    };
    check(&env.run(&["push"]), "push");
    // Its start-up pass is refused as well: ready once it answers.
    let _d = Daemon::start(&env);
    check(&env.run(&["ctl", "push"]), "ctl push");
}

/// Finding 12: a file pushed before and now excluded is "excluded here", not "no local
/// file", in `push --all` and in `verify`.
#[test]
fn an_excluded_file_on_the_remote_is_called_excluded_not_missing() {
    let env = directory_env();
    env.write_file("a.md", "a\n");
    env.write_file("private.md", "p\n");
    env.run(&["push"]).assert_code(0);
    env.write_file(".devlogignore", "private.md\n");
    let _d = running(&env, WAIT);
    let out = env.run(&["ctl", "push", "--all"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("excluded here 1 (the remote keeps its last version): private.md"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("no local file"), "{}", out.stdout);
    let out = env.run(&["verify"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("excluded here      private.md"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("only on remote     "),
        "{}",
        out.stdout
    );
}

/// Finding 13: `--allow-deletes` states the guard's rule: it counts over the last hour.
#[test]
fn allow_deletes_help_states_the_rule_over_the_last_hour() {
    let env = TestEnv::new();
    let devlog_help = env.devlog().args(["push", "-h"]).output().unwrap();
    let devlog_help = String::from_utf8_lossy(&devlog_help.stdout).into_owned();
    for (what, help) in [
        ("devlogd push -h", env.run(&["push", "-h"]).stdout),
        (
            "devlogd ctl push -h",
            env.run(&["ctl", "push", "-h"]).stdout,
        ),
        ("devlog push -h", devlog_help),
    ] {
        let line = help
            .lines()
            .skip_while(|l| !l.contains("--allow-deletes"))
            .take_while(|l| l.contains("--allow-deletes") || l.starts_with("          "))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(!line.contains("in one pass"), "{what}: {line}");
        assert!(
            line.contains("within an hour")
                && line.contains("50 files or 10 % of the files, whichever is larger"),
            "{what}: {line}"
        );
    }
}

/// Finding 16: `history` of a directory says it takes one file (exit 2), naming one.
#[test]
fn history_of_a_directory_says_it_takes_one_file() {
    let env = directory_env();
    env.write_file("bulk/d003/x.md", "x\n");
    env.write_file("bulk/d004/f01.md", "1\n");
    env.write_file("bulk/d004/f02.md", "2\n");
    env.run(&["push"]).assert_code(0);
    let out = env
        .devlogd()
        .args(["history", "../d004"])
        .current_dir(env.journal().join("bulk/d003"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "bulk/d004 is a directory: history shows one file's versions, e.g. devlogd history ../d004/f01.md"
        ),
        "{stderr}"
    );
    assert!(!stdout.contains("no versions"), "{stdout}");
    // Gone here, still on the remote: the blobs below it say it was a directory.
    std::fs::remove_dir_all(env.journal().join("bulk/d004")).unwrap();
    let out = env.run(&["history", "bulk/d004"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("e.g. devlogd history bulk/d004/f01.md"),
        "{}",
        out.stderr
    );
}

/// Finding 15: each man page's EXIT STATUS lists the codes its command returns, no others.
#[test]
fn each_man_page_lists_only_the_exit_codes_its_command_returns() {
    let env = TestEnv::new();
    let dir = env.root().join("man/man1");
    env.run(&["man", dir.to_str().unwrap()]).assert_code(0);
    let out = env
        .devlog()
        .args(["man", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let codes = |page: &str| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        let section = text
            .split(".SH \"EXIT STATUS\"\n")
            .nth(1)
            .and_then(|s| s.split(".SH").next())
            .unwrap_or_default()
            .to_string();
        section
            .lines()
            .filter_map(|l| l.strip_prefix("\\fB")?.strip_suffix("\\fR"))
            .map(str::to_string)
            .collect()
    };
    let pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".1").map(str::to_string)
        })
        .collect();
    assert!(pages.len() > 20, "{pages:?}");
    for page in &pages {
        let got = codes(page);
        assert!(
            got.contains(&"0".to_string()) && got.contains(&"2".to_string()),
            "{page}: {got:?}"
        );
        assert!(
            devlogd::commands::man_sections::exit_status(page).is_some(),
            "{page} has no EXIT STATUS of its own"
        );
    }
    for (page, want) in [
        ("devlog-show", &["0", "2"][..]),
        ("devlog-new", &["0", "2"]),
        ("devlog-list", &["0", "2"]),
        ("devlog-edit", &["0", "2"]),
        ("devlogd-history", &["0", "1", "2", "4", "5", "7"]),
        ("devlogd-ctl-status", &["0", "2", "3"]),
        ("devlogd-push", &["0", "1", "2", "3", "4", "5", "6", "7"]),
        ("devlogd-ctl-push", &["0", "1", "2", "3", "4", "5", "6"]),
        ("devlogd-restore", &["0", "1", "2", "3", "4", "7", "130"]),
        ("devlogd-key-passwd", &["0", "1", "2", "4", "5", "7"]),
    ] {
        assert_eq!(codes(page), want, "{page}");
    }
}

/// The second walk's (d): `history` with an expired SAS said only that the credentials were
/// refused (exit 1); it says the token expired and exits 5, as push does.
#[test]
fn history_with_an_expired_sas_says_it_expired_and_exits_5() {
    let az = Azurite::shared();
    let env = TestEnv::new().with_sas(account_sas_for(
        ACCOUNT_KEY,
        "racwdl",
        "2020-01-01T00:00:00Z",
    ));
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n",
        az.container_url(&unique_container("hist-expired"))
    ));
    env.write_file("a.md", "a\n");
    let out = env.run(&["history", "a.md"]);
    out.assert_code(5);
    assert!(
        crate::tell::says_the_sas_expired(&out.stderr),
        "{}",
        out.stderr
    );
}
