//! `devlogd service`: the unit passes `systemd-analyze verify`, the plist parses with a real
//! plist parser, and install/uninstall against a temporary HOME write and remove exactly
//! the expected files.

use crate::common;

use common::TestEnv;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out
}

fn unit_path(env: &TestEnv) -> PathBuf {
    env.config_home().join("systemd/user/devlogd.service")
}

#[test]
fn install_dry_run_writes_nothing_and_install_uninstall_write_and_remove_exactly_the_unit() {
    // `service install` asks systemd: not while a test runs a user manager.
    let _machine = common::machine::shared();
    let env = TestEnv::new();
    let before = tree(env.root());
    let dry = env.run(&["service", "install", "--dry-run"]);
    dry.assert_code(0);
    assert_eq!(tree(env.root()), before, "--dry-run wrote something");
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_devlogd")).unwrap();
    assert!(
        dry.stdout
            .contains(&format!("ExecStart={} run", binary.display())),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(&unit_path(&env).display().to_string()),
        "{}",
        dry.stdout
    );
    for line in [
        "  systemctl --user daemon-reload",
        "  systemctl --user enable devlogd.service",
        "  systemctl --user restart devlogd.service",
    ] {
        assert!(dry.stdout.lines().any(|l| l == line), "{}", dry.stdout);
    }
    let state_dir = env.state_home().join("devlog");
    let data_dir = env.data_home().join("devlog");
    assert!(
        dry.stdout.lines().any(|l| l
            == format!(
                "ReadWritePaths=-{} -{}",
                state_dir.display(),
                data_dir.display()
            )),
        "every directory devlogd writes, by its real path:\n{}",
        dry.stdout
    );

    // No user bus in the test environment: the unit is written, and the manual steps shown.
    let install = env.run(&["service", "install"]);
    assert!(
        install.code() == Some(0) || install.code() == Some(1),
        "{}\n{}",
        install.stdout,
        install.stderr
    );
    if install.code() == Some(1) {
        assert!(
            install.stdout.contains("loginctl enable-linger"),
            "{}",
            install.stdout
        );
        assert!(
            install
                .stdout
                .contains("systemctl --user restart devlogd.service"),
            "{}",
            install.stdout
        );
    }
    let after = tree(env.root());
    let added: BTreeSet<_> = after.difference(&before).cloned().collect();
    let config = env
        .config_home()
        .strip_prefix(env.root())
        .unwrap()
        .to_path_buf();
    let data = env
        .data_home()
        .strip_prefix(env.root())
        .unwrap()
        .to_path_buf();
    let state = env
        .state_home()
        .strip_prefix(env.root())
        .unwrap()
        .to_path_buf();
    let expected: BTreeSet<PathBuf> = [
        config.join("systemd"),
        config.join("systemd/user"),
        config.join("systemd/user/devlogd.service"),
        data.join("devlog"),
        state.join("devlog"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        added, expected,
        "install wrote exactly the unit (and the directories it makes writable)"
    );
    let unit = std::fs::read_to_string(unit_path(&env)).unwrap();
    assert_eq!(
        unit,
        dry.stdout
            .split_once(":\n\n")
            .unwrap()
            .1
            .split("\nWould run:")
            .next()
            .unwrap()
            .trim_end()
            .to_string()
            + "\n"
    );

    let uninstall = env.run(&["service", "uninstall"]);
    assert!(uninstall.stdout.contains("Removed"), "{}", uninstall.stdout);
    assert!(!unit_path(&env).exists());
    let left: BTreeSet<_> = tree(env.root()).difference(&before).cloned().collect();
    assert!(
        !left.iter().any(|p| p.ends_with("devlogd.service")),
        "uninstall removed the unit: {left:?}"
    );
}

fn systemd_analyze() -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "systemd-analyze is missing: scripts/test installs it (apt-get install systemd)"
    );
    PathBuf::from(path)
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    // `service install` asks systemd: not while a test runs a user manager.
    let _machine = common::machine::shared();
    let env = TestEnv::new();
    env.run(&["service", "install"]);
    let unit = unit_path(&env);
    assert!(unit.exists());
    let out = Command::new(systemd_analyze())
        .args(["--user", "verify"])
        .arg(&unit)
        .env("XDG_RUNTIME_DIR", env.runtime_dir())
        .env("HOME", env.home())
        .env("XDG_CONFIG_HOME", env.config_home())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_unit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("devlogd.service"))
        .collect();
    assert!(about_unit.is_empty(), "systemd-analyze complained:\n{text}");
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
}

#[test]
fn the_launchd_plist_parses_and_has_the_keys() {
    // `service install` asks systemd: not while a test runs a user manager.
    let _machine = common::machine::shared();
    let plist = Path::new(env!("CARGO_MANIFEST_DIR")).join("launchd/dev.devlog.devlogd.plist");
    let script = r#"
import plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
assert p["Label"] == "dev.devlog.devlogd", p
assert p["ProgramArguments"][1:] == ["run"], p
assert p["ProgramArguments"][0].endswith("devlogd"), p
assert p["RunAtLoad"] is True, p
assert p["KeepAlive"] == {"Crashed": True}, p
assert p["ProcessType"] == "Background", p
for k in ("StandardOutPath", "StandardErrorPath"):
    assert p[k].endswith("/Library/Logs/devlogd.log"), p
print("ok")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&plist)
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parse a plist with Python's plistlib and run `checks` (Python statements on `p`).
fn check_plist(plist: &str, checks: &str) {
    let script = format!(
        "import plistlib, sys\np = plistlib.loads(sys.stdin.buffer.read())\n{checks}\nprint('ok')\n"
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plist.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}\n{plist}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

#[test]
fn launchd_install_renders_real_paths_and_the_exact_launchctl_commands() {
    // `service install` asks systemd: not while a test runs a user manager.
    let _machine = common::machine::shared();
    let env = TestEnv::new();
    let config = env.root().join("my config.toml");
    std::fs::write(&config, "").unwrap();
    let before = tree(env.root());
    let dry = env.run(&[
        "--config",
        config.to_str().unwrap(),
        "service",
        "install",
        "--dry-run",
        "--manager",
        "launchd",
    ]);
    dry.assert_code(0);
    assert_eq!(tree(env.root()), before, "--dry-run wrote something");
    let plist_path = env
        .home()
        .join("Library/LaunchAgents/dev.devlog.devlogd.plist");
    let (head, rest) = dry.stdout.split_once(":\n\n").unwrap();
    assert_eq!(head, format!("Would write {}", plist_path.display()));
    let (plist, commands) = rest.split_once("\nWould run:\n").unwrap();
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_devlogd")).unwrap();
    let home = env.home().display().to_string();
    check_plist(
        plist,
        &format!(
            r#"
assert p["Label"] == "dev.devlog.devlogd", p
assert p["ProgramArguments"] == [{binary:?}, "--config", {config:?}, "run"], p
assert p["RunAtLoad"] is True, p
assert p["KeepAlive"] == {{"Crashed": True}}, p
assert p["ProcessType"] == "Background", p
for k in ("StandardOutPath", "StandardErrorPath"):
    assert p[k] == {log:?}, p
"#,
            binary = binary.display().to_string(),
            config = config.display().to_string(),
            log = format!("{home}/Library/Logs/devlogd.log"),
        ),
    );
    assert!(!plist.contains('%'), "launchd expands nothing:\n{plist}");
    let uid = uid();
    let expected = [
        format!("  launchctl bootout gui/{uid}/dev.devlog.devlogd    # may fail: not loaded yet"),
        format!("  launchctl enable gui/{uid}/dev.devlog.devlogd"),
        format!("  launchctl bootstrap gui/{uid} {}", plist_path.display()),
    ];
    assert_eq!(
        commands.lines().collect::<Vec<_>>(),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );

    let un = env.run(&["service", "uninstall", "--dry-run", "--manager", "launchd"]);
    un.assert_code(0);
    assert_eq!(
        un.stdout,
        format!(
            "Would run:\n  launchctl bootout gui/{uid}/dev.devlog.devlogd\nWould remove {}\n",
            plist_path.display()
        )
    );

    // Another manager than this system's is only ever rendered.
    if cfg!(target_os = "linux") {
        let real = env.run(&["service", "install", "--manager", "launchd"]);
        real.assert_code(2);
        assert!(
            real.stderr.contains("only with --dry-run"),
            "{}",
            real.stderr
        );
        assert_eq!(tree(env.root()), before);
    }
}

/// `devlogd --config CONFIG service install --dry-run --manager systemd`, which must succeed.
fn systemd_dry_run(env: &TestEnv, config: &Path) -> common::RunOutput {
    let dry = env.run(&[
        "--config",
        config.to_str().unwrap(),
        "service",
        "install",
        "--dry-run",
        "--manager",
        "systemd",
    ]);
    dry.assert_code(0);
    dry
}

#[test]
fn systemd_install_passes_config_through() {
    // `service install` asks systemd: not while a test runs a user manager.
    let _machine = common::machine::shared();
    let env = TestEnv::new();
    let config = env.root().join("other.toml");
    std::fs::write(&config, "").unwrap();
    let dry = systemd_dry_run(&env, &config);
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_devlogd")).unwrap();
    let line = format!(
        "ExecStart={} --config {} run",
        binary.display(),
        config.display()
    );
    assert!(dry.stdout.lines().any(|l| l == line), "{}", dry.stdout);
    assert!(
        !dry.stdout
            .lines()
            .any(|l| l.starts_with("EnvironmentFile=")),
        "devlogd reads the credentials file itself:\n{}",
        dry.stdout
    );
}

/// A journal (or binary, or configuration) under /tmp: the unit's private /tmp would hide it
/// from the service (seen: a binary under /tmp failed with exit 203 under a real user
/// manager), so the unit goes without one and install says why.
#[test]
fn a_journal_under_tmp_gets_a_unit_that_can_see_it() {
    // `service install` asks systemd: not while a test runs a user manager.
    let _machine = common::machine::shared();
    let env = TestEnv::new();
    let tmp = tempfile::Builder::new()
        .prefix("devlogd-journal-")
        .tempdir_in("/tmp")
        .unwrap();
    let journal = tmp.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let config = env.root().join("tmp-journal.toml");
    std::fs::write(&config, format!("root = \"{}\"\n", journal.display())).unwrap();
    let dry = systemd_dry_run(&env, &config);
    assert!(
        dry.stdout.lines().any(|l| l == "PrivateTmp=no"),
        "{}",
        dry.stdout
    );
    assert!(
        !dry.stdout.lines().any(|l| l == "PrivateTmp=yes"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("is under /tmp, so the unit runs without a private /tmp"),
        "{}",
        dry.stdout
    );
}
