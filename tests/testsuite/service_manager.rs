//! `devlogd service install` under a real systemd user manager: the unit must start, back up
//! an entry, reload, stop and uninstall, and a unit that fails must be reported as such.
//!
//! `systemd-analyze verify` cannot tell whether the sandbox leaves devlogd's directories
//! writable; only a manager that really applies `ProtectSystem=strict` can. This test starts
//! a private `systemd --user` (its own HOME and XDG_RUNTIME_DIR, outside /tmp, which the
//! unit's `PrivateTmp=` hides, and outside /home and /root, which `ProtectSystem=strict`
//! leaves to `ProtectHome=`), drives the real binary against it, and kills the manager it
//! started by pid, even when an assertion fails. It holds `common::machine::exclusive`:
//! no other test's daemon runs while it holds the machine-wide `/run/systemd/system` marker.
//!
//! Needs Linux with systemd 249 or later installed (`scripts/test` installs it), and either
//! a running systemd or root (to create `/run/systemd/system`, without which `systemd
//! --user` refuses to start; it is removed again if this test created it).

#![cfg(target_os = "linux")]

use crate::common;

use common::{poll_until, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const SYSTEMD: &str = "/usr/lib/systemd/systemd";
const MARKER: &str = "/run/systemd/system";

/// A private user manager, stopped (SIGTERM, then SIGKILL) on drop.
struct UserManager {
    child: Option<Child>,
    dir: tempfile::TempDir,
    created_marker: bool,
}

impl UserManager {
    fn start() -> UserManager {
        assert!(
            Path::new(SYSTEMD).exists(),
            "{SYSTEMD} is missing: scripts/test installs systemd (apt-get install systemd)"
        );
        let created_marker = if Path::new(MARKER).exists() {
            false
        } else {
            // SAFETY: geteuid cannot fail.
            let root = unsafe { libc::geteuid() } == 0;
            assert!(
                root,
                "{MARKER} is missing and this test is not root: `systemd --user` only starts \
                 where systemd runs; run the tests as root (scripts/test in a container) or on \
                 a systemd machine"
            );
            std::fs::create_dir(MARKER).expect("creating /run/systemd/system");
            true
        };
        // Under target/, not /tmp: the unit's PrivateTmp= would hide it.
        let dir = tempfile::Builder::new()
            .prefix("usermgr-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("creating the manager's directory");
        let mut manager = UserManager {
            child: None,
            dir,
            created_marker,
        };
        std::fs::create_dir_all(manager.home()).unwrap();
        std::fs::create_dir_all(manager.runtime_dir()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            manager.runtime_dir(),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let log = std::fs::File::create(manager.dir.path().join("manager.log")).unwrap();
        let child = manager
            .command(SYSTEMD)
            .arg("--user")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting systemd --user");
        manager.child = Some(child);
        let private = manager.runtime_dir().join("systemd/private");
        wait_for(Duration::from_secs(30), "the user manager", || {
            if let Some(status) = manager.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "systemd --user exited at start ({status}):\n{}",
                    manager.read("manager.log")
                );
            }
            if !private.exists() {
                return None;
            }
            let state = manager.systemctl(&["is-system-running"]);
            let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
            (state == "running" || state == "degraded").then_some(())
        });
        manager
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// A command in the user's environment: HOME, XDG_RUNTIME_DIR, PATH; the XDG base
    /// directories are the defaults under HOME, as for a real user.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("NO_COLOR", "1")
            .current_dir(self.home())
            .stdin(Stdio::null());
        cmd
    }

    fn systemctl(&self, args: &[&str]) -> Output {
        self.command("systemctl")
            .arg("--user")
            .args(args)
            .output()
            .expect("running systemctl")
    }

    fn property(&self, name: &str) -> String {
        let out = self.systemctl(&["show", "devlogd.service", &format!("--property={name}")]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .strip_prefix(&format!("{name}="))
            .unwrap_or_default()
            .to_string()
    }

    fn devlogd(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_devlogd"))
            .args(args)
            .output()
            .expect("running devlogd")
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the manager stops its units (devlogd) and exits.
            // SAFETY: signalling the child this guard started, by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let exited = poll_until(Duration::from_secs(30), || child.try_wait().ok().flatten());
            if exited.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if self.created_marker {
            let _ = std::fs::remove_dir(MARKER);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_unit_runs_under_a_real_user_manager() {
    if std::env::var_os("DEVLOGD_SKIP_USER_MANAGER_TEST").is_some() {
        eprintln!("DEVLOGD_SKIP_USER_MANAGER_TEST is set: not starting a user manager");
        return;
    }
    let _machine = common::machine::exclusive();
    let m = UserManager::start();
    let home = m.home();
    let log = m.dir.path().join("unit.log");
    // No journald here: the drop-in sends the service's output to a file.
    let drop_in = home.join(".config/systemd/user/devlogd.service.d");
    std::fs::create_dir_all(&drop_in).unwrap();
    std::fs::write(
        drop_in.join("test-log.conf"),
        format!(
            "[Service]\nStandardOutput=append:{0}\nStandardError=append:{0}\n",
            log.display()
        ),
    )
    .unwrap();

    // A unit that fails (exit 2: the configured root is missing) is reported as failed,
    // with its state and where its log is, not as an unreachable manager.
    let bad = m.dir.path().join("bad config.toml");
    std::fs::write(
        &bad,
        format!("root = \"{}/missing-journal\"\n", m.dir.path().display()),
    )
    .unwrap();
    let unit_file = home.join(".config/systemd/user/devlogd.service");
    let failed = m.devlogd(&["--config", bad.to_str().unwrap(), "service", "install"]);
    let out = text(&failed);
    assert_eq!(failed.status.code(), Some(1), "{out}");
    assert!(
        out.contains("devlogd.service did not start: failed"),
        "{out}"
    );
    assert!(out.contains("exit status 2"), "{out}");
    assert!(
        out.contains("journalctl --user -u devlogd.service"),
        "{out}"
    );
    assert!(!out.contains("cannot be reached"), "{out}");
    let unit = std::fs::read_to_string(&unit_file).unwrap();
    assert!(
        unit.contains(&format!(" --config \"{}\" run", bad.display())),
        "--config is passed through:\n{unit}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("missing-journal"),
        "the daemon's own error is in its log:\n{}",
        m.read("unit.log")
    );

    // The default configuration: installed, started, ready.
    let installed = m.devlogd(&["service", "install"]);
    assert_eq!(
        installed.status.code(),
        Some(0),
        "{}\n--- unit log ---\n{}",
        text(&installed),
        m.read("unit.log")
    );
    wait_for(Duration::from_secs(30), "devlogd to be active", || {
        let out = m.systemctl(&["is-active", "devlogd"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "active").then_some(())
    });
    let unit = std::fs::read_to_string(&unit_file).unwrap();
    assert!(!unit.contains(" --config "), "{unit}");
    // READY=1 made it active; STATUS= shows what it does.
    wait_for(Duration::from_secs(30), "a STATUS= text", || {
        (!m.property("StatusText").is_empty()).then_some(())
    });
    let pid = m.property("MainPID");

    // An entry reaches the mirror: the state and data directories are writable.
    let entry = home.join(".devlog/entries/2026/11/2026-11-22-k3x9qa.md");
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    std::fs::write(&entry, "+++\nid = \"k3x9qa\"\n+++\n\n# Under systemd\n").unwrap();
    let mirrored = home.join(".local/share/devlog/mirror/entries/2026/11/2026-11-22-k3x9qa.md");
    wait_for(Duration::from_secs(30), "the entry in the mirror", || {
        std::fs::read_to_string(&mirrored)
            .ok()
            .filter(|t| t.contains("# Under systemd"))
    });
    let state = home.join(".local/state/devlog");
    assert!(
        std::fs::read_dir(&state).unwrap().next().is_some(),
        "the index lives in {}",
        state.display()
    );

    // Reload, both ways, without a restart.
    let reload = m.systemctl(&["reload", "devlogd"]);
    assert!(reload.status.success(), "{}", text(&reload));
    let reload = m.devlogd(&["ctl", "reload"]);
    assert!(reload.status.success(), "{}", text(&reload));
    assert_eq!(m.property("MainPID"), pid, "reload must not restart");
    assert_eq!(m.property("ActiveState"), "active");

    let status = m.devlogd(&["service", "status"]);
    let out = text(&status);
    assert_eq!(status.status.code(), Some(0), "{out}");
    assert!(out.contains("active (running)"), "{out}");
    assert!(out.contains(&format!("(pid {pid})")), "{out}");
    assert!(out.contains("state          idle"), "{out}");

    let stop = m.systemctl(&["stop", "devlogd"]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert_eq!(m.property("ActiveState"), "inactive");
    assert!(
        m.read("unit.log").contains("stopped"),
        "a graceful stop:\n{}",
        m.read("unit.log")
    );

    let uninstall = m.devlogd(&["service", "uninstall"]);
    assert_eq!(uninstall.status.code(), Some(0), "{}", text(&uninstall));
    assert!(!unit_file.exists());
    let enabled = m.systemctl(&["is-enabled", "devlogd"]);
    assert!(!enabled.status.success(), "{}", text(&enabled));
}
