//! `devlogd service install | uninstall | status`: the systemd user unit (Linux) and the
//! launchd agent (macOS).
//!
//! Both files come from the templates in this file and nowhere else: `install` renders them
//! with this machine's paths, and the copies in `systemd/` and `launchd/` are the same
//! templates rendered with portable defaults (a test keeps them equal).

use crate::commands::{CliError, exit};
use crate::config::{Config, RemoteConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const UNIT_NAME: &str = "devlogd.service";
pub const LAUNCHD_LABEL: &str = "dev.devlog.devlogd";

/// What a service file needs to know about this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceParams {
    /// The installed binary.
    pub binary: String,
    /// `KEY=value` credentials (systemd `EnvironmentFile`).
    pub credentials: String,
    /// Directories devlogd writes besides its state and runtime directories, which
    /// systemd manages itself (`StateDirectory=`, `RuntimeDirectory=`).
    pub writable: Vec<String>,
    /// The user's home (launchd needs absolute paths).
    pub home: String,
}

impl ServiceParams {
    /// The portable defaults the files in the repository are rendered with.
    pub fn repo_defaults() -> Self {
        ServiceParams {
            binary: "%h/.cargo/bin/devlogd".into(),
            credentials: "%h/.config/devlog/credentials".into(),
            writable: vec!["%h/.local/share/devlog".into()],
            home: "/Users/YOU".into(),
        }
    }

    /// This machine: the running binary and the configuration's paths.
    pub fn for_config(config: &Config) -> Result<Self, CliError> {
        let binary = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|e| {
                CliError::new(exit::USAGE, format!("cannot find devlogd's own path: {e}"))
            })?;
        let mut writable = vec![config.dirs.data_dir.display().to_string()];
        if let RemoteConfig::Directory { path, .. } = &config.remote
            && !path.starts_with(&config.dirs.data_dir)
        {
            writable.push(path.display().to_string());
        }
        Ok(ServiceParams {
            binary: binary.display().to_string(),
            credentials: config.dirs.credentials_file().display().to_string(),
            writable,
            home: config.dirs.home.display().to_string(),
        })
    }
}

/// The systemd user unit.
pub fn systemd_unit(p: &ServiceParams) -> String {
    let writable: Vec<String> = p.writable.iter().map(|w| format!("-{w}")).collect();
    format!(
        "\
# devlogd: keeps the developer journal backed up. Installed by `devlogd service install`.
[Unit]
Description=devlogd: back up the developer journal (~/.devlog)
# No network target: devlogd waits out outages itself (and user managers have none).
StartLimitIntervalSec=10min
StartLimitBurst=5

[Service]
Type=notify
ExecStart={binary} run
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=10s
# Exit 2 is a bad configuration: restarting cannot fix it.
RestartPreventExitStatus=2
TimeoutStopSec=30s
EnvironmentFile=-{credentials}
StateDirectory=devlog
RuntimeDirectory=devlog
RuntimeDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ReadWritePaths={writable}

[Install]
WantedBy=default.target
",
        binary = p.binary,
        credentials = p.credentials,
        writable = writable.join(" "),
    )
}

/// The launchd agent.
pub fn launchd_plist(p: &ServiceParams) -> String {
    let log = format!("{}/Library/Logs/devlogd.log", p.home);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- devlogd: keeps the developer journal backed up. Installed by `devlogd service install`. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{LAUNCHD_LABEL}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{binary}</string>
		<string>run</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>ProcessType</key>
	<string>Background</string>
	<key>StandardOutPath</key>
	<string>{log}</string>
	<key>StandardErrorPath</key>
	<string>{log}</string>
</dict>
</plist>
"#,
        binary = xml_escape(&p.binary),
        log = xml_escape(&log),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Which service manager this build installs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Systemd,
    Launchd,
}

fn manager() -> Manager {
    if cfg!(target_os = "macos") {
        Manager::Launchd
    } else {
        Manager::Systemd
    }
}

/// Where the service file goes.
fn service_file(config: &Config) -> PathBuf {
    match manager() {
        Manager::Systemd => {
            let config_home = config
                .dirs
                .config_dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| config.dirs.home.join(".config"));
            config_home.join("systemd/user").join(UNIT_NAME)
        }
        Manager::Launchd => config
            .dirs
            .home
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")),
    }
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// The commands that load and start (or stop and unload) the service.
fn start_commands(file: &Path) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match manager() {
        Manager::Systemd => vec![
            s(&["systemctl", "--user", "daemon-reload"]),
            s(&["systemctl", "--user", "enable", "--now", UNIT_NAME]),
        ],
        Manager::Launchd => vec![s(&[
            "launchctl",
            "bootstrap",
            &format!("gui/{}", uid()),
            &file.display().to_string(),
        ])],
    }
}

fn stop_commands() -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match manager() {
        Manager::Systemd => vec![s(&["systemctl", "--user", "disable", "--now", UNIT_NAME])],
        Manager::Launchd => vec![s(&[
            "launchctl",
            "bootout",
            &format!("gui/{}/{LAUNCHD_LABEL}", uid()),
        ])],
    }
}

fn shell_line(cmd: &[String]) -> String {
    cmd.join(" ")
}

/// Run a command; its combined output on failure.
fn run_command(cmd: &[String]) -> Result<(), String> {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cmd[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        Err(text.trim().lines().next().unwrap_or("failed").to_string())
    }
}

/// Manual steps for when `systemctl --user` cannot be reached (containers, ssh sessions).
fn manual_steps(file: &Path) -> String {
    let mut steps = String::new();
    if manager() == Manager::Systemd {
        steps.push_str(&format!(
            "  loginctl enable-linger {}    # let your services run without a login session\n",
            std::env::var("USER").unwrap_or_else(|_| "$USER".into())
        ));
    }
    for cmd in start_commands(file) {
        steps.push_str(&format!("  {}\n", shell_line(&cmd)));
    }
    steps
}

pub fn install(config: &Config, dry_run: bool) -> Result<i32, CliError> {
    let params = ServiceParams::for_config(config)?;
    let file = service_file(config);
    let content = match manager() {
        Manager::Systemd => systemd_unit(&params),
        Manager::Launchd => launchd_plist(&params),
    };
    if dry_run {
        println!("Would write {}:\n", file.display());
        println!("{content}");
        println!("Would run:");
        for cmd in start_commands(&file) {
            println!("  {}", shell_line(&cmd));
        }
        return Ok(exit::OK);
    }
    let io = |what: &str, path: &Path, e: std::io::Error| {
        CliError::new(
            exit::USAGE,
            format!("cannot {what} {}: {e}", path.display()),
        )
    };
    // The unit makes these writable; they must exist for that to work.
    for dir in &params.writable {
        std::fs::create_dir_all(dir).map_err(|e| io("create", Path::new(dir), e))?;
    }
    if manager() == Manager::Launchd {
        let logs = config.dirs.home.join("Library/Logs");
        std::fs::create_dir_all(&logs).map_err(|e| io("create", &logs, e))?;
    }
    let parent = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    std::fs::write(&file, &content).map_err(|e| io("write", &file, e))?;
    println!("Wrote {}", file.display());
    for cmd in start_commands(&file) {
        if let Err(e) = run_command(&cmd) {
            println!(
                "`{}` failed: {e}\nThe service manager cannot be reached from here (no user session bus: a container, or ssh without lingering). To start devlogd, run in your login session:\n{}",
                shell_line(&cmd),
                manual_steps(&file)
            );
            return Ok(exit::FILES_FAILED);
        }
        println!("Ran {}", shell_line(&cmd));
    }
    println!("devlogd is installed and running; `devlogd service status` shows it.");
    Ok(exit::OK)
}

pub fn uninstall(config: &Config, dry_run: bool) -> Result<i32, CliError> {
    let file = service_file(config);
    if dry_run {
        println!("Would run:");
        for cmd in stop_commands() {
            println!("  {}", shell_line(&cmd));
        }
        println!("Would remove {}", file.display());
        return Ok(exit::OK);
    }
    let mut code = exit::OK;
    for cmd in stop_commands() {
        match run_command(&cmd) {
            Ok(()) => println!("Ran {}", shell_line(&cmd)),
            Err(e) => {
                println!(
                    "`{}` failed ({e}); if devlogd runs, stop it with `devlogd ctl stop`.",
                    shell_line(&cmd)
                );
                code = exit::FILES_FAILED;
            }
        }
    }
    match std::fs::remove_file(&file) {
        Ok(()) => println!("Removed {}", file.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("{} was not installed", file.display())
        }
        Err(e) => {
            return Err(CliError::new(
                exit::USAGE,
                format!("cannot remove {}: {e}", file.display()),
            ));
        }
    }
    if manager() == Manager::Systemd {
        let _ = run_command(&["systemctl", "--user", "daemon-reload"].map(String::from));
    }
    Ok(code)
}

/// The manager's view beside the daemon's own status.
pub async fn status(config: &Config) -> Result<i32, CliError> {
    let file = service_file(config);
    println!(
        "service file   {}{}",
        file.display(),
        if file.exists() {
            ""
        } else {
            " (not installed)"
        }
    );
    let query: Vec<String> = match manager() {
        Manager::Systemd => [
            "systemctl",
            "--user",
            "status",
            UNIT_NAME,
            "--no-pager",
            "--lines=5",
        ]
        .map(String::from)
        .to_vec(),
        Manager::Launchd => vec![
            "launchctl".into(),
            "print".into(),
            format!("gui/{}/{LAUNCHD_LABEL}", uid()),
        ],
    };
    match Command::new(&query[0]).args(&query[1..]).output() {
        Ok(out) => {
            println!("--- {} ---", shell_line(&query));
            print!("{}", String::from_utf8_lossy(&out.stdout));
            print!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Err(e) => println!("cannot run {}: {e}", query[0]),
    }
    println!("--- devlogd ctl status ---");
    match crate::ctl::run(config, crate::protocol::Command::Status, false).await {
        Ok(code) => Ok(code),
        Err(e) => {
            println!("{}", e.message);
            Ok(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test -- --ignored regenerate` rewrites the repository copies after a template
    /// change.
    #[test]
    #[ignore]
    fn regenerate_repository_files() {
        let p = ServiceParams::repo_defaults();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::write(root.join("systemd/devlogd.service"), systemd_unit(&p)).unwrap();
        std::fs::write(
            root.join("launchd/dev.devlog.devlogd.plist"),
            launchd_plist(&p),
        )
        .unwrap();
    }

    #[test]
    fn repository_files_are_the_templates_rendered() {
        let p = ServiceParams::repo_defaults();
        assert_eq!(
            systemd_unit(&p),
            include_str!("../systemd/devlogd.service"),
            "systemd/devlogd.service drifted from the template: regenerate it"
        );
        assert_eq!(
            launchd_plist(&p),
            include_str!("../launchd/dev.devlog.devlogd.plist"),
            "launchd/dev.devlog.devlogd.plist drifted from the template: regenerate it"
        );
    }

    #[test]
    fn unit_has_the_settings_that_matter() {
        let unit = systemd_unit(&ServiceParams {
            binary: "/opt/bin/devlogd".into(),
            credentials: "/home/u/.config/devlog/credentials".into(),
            writable: vec!["/home/u/.local/share/devlog".into(), "/srv/mirror".into()],
            home: "/home/u".into(),
        });
        for line in [
            "Type=notify",
            "ExecStart=/opt/bin/devlogd run",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartPreventExitStatus=2",
            "EnvironmentFile=-/home/u/.config/devlog/credentials",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=-/home/u/.local/share/devlog -/srv/mirror",
            "UMask=0077",
            "WantedBy=default.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "missing {line}:\n{unit}");
        }
        assert!(
            !unit.contains("network-online"),
            "no network target dependency"
        );
    }
}
