//! `devlogd service`: the unit passes `systemd-analyze verify`, the plist parses with a real
//! plist parser, and install/uninstall against a temporary HOME write and remove exactly
//! the expected files.

mod common;

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
    assert!(
        dry.stdout
            .contains("systemctl --user enable --now devlogd.service"),
        "{}",
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
                .contains("systemctl --user enable --now devlogd.service"),
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
    let expected: BTreeSet<PathBuf> = [
        config.join("systemd"),
        config.join("systemd/user"),
        config.join("systemd/user/devlogd.service"),
        data.join("devlog"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        added, expected,
        "install wrote exactly the unit (and the writable data dir)"
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
    let plist = Path::new(env!("CARGO_MANIFEST_DIR")).join("launchd/dev.devlog.devlogd.plist");
    let script = r#"
import plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
assert p["Label"] == "dev.devlog.devlogd", p
assert p["ProgramArguments"][1:] == ["run"], p
assert p["ProgramArguments"][0].endswith("devlogd"), p
assert p["RunAtLoad"] is True, p
assert p["KeepAlive"] == {"SuccessfulExit": False}, p
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
