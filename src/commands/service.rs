//! `devlogd service install | uninstall | status`: the systemd user unit (Linux) and the
//! launchd agent (macOS).
//!
//! Both files come from the templates in this file and nowhere else: `install` renders them
//! with this machine's real paths, and the copies in `systemd/` and `launchd/` are the same
//! templates rendered with portable defaults (a test keeps them equal).
//!
//! The unit names every directory devlogd writes in `ReadWritePaths=` rather than relying
//! on `StateDirectory=`: before systemd 254 a user unit's `StateDirectory=` is under
//! `$XDG_CONFIG_HOME`, not `$XDG_STATE_HOME`, and `ProtectSystem=strict` then leaves the
//! real state directory read-only (Debian 12, Ubuntu 22.04, RHEL 9). `install` creates
//! those directories first, because a missing one cannot be made writable.

use crate::commands::{Failure, exit};
use crate::config::{Config, ConfigError, Dirs, RemoteConfig};
use crate::exit::ExitCode;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const UNIT_NAME: &str = "devlogd.service";
pub const LAUNCHD_LABEL: &str = "dev.devlog.devlogd";

/// Which service manager a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Systemd,
    Launchd,
}

impl Manager {
    /// The one this build installs for.
    pub fn native() -> Manager {
        if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }
}

impl std::str::FromStr for Manager {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "systemd" => Ok(Manager::Systemd),
            "launchd" => Ok(Manager::Launchd),
            other => Err(format!(
                "unknown service manager `{other}`: use systemd or launchd"
            )),
        }
    }
}

/// What a service file needs to know about this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceParams {
    /// The installed binary.
    pub binary: String,
    /// `--config PATH` for `devlogd run`, when install was given a non-default file.
    pub config: Option<String>,
    /// Every directory devlogd writes besides its runtime directory (which systemd
    /// creates: `RuntimeDirectory=`): the state directory, the data directory (the
    /// built-in mirror) and a directory remote outside it.
    pub writable: Vec<String>,
    /// The user's home (launchd needs absolute paths: it expands nothing).
    pub home: String,
    /// Real paths, escaped for systemd (`%` → `%%`); false for the repository copy,
    /// which is written with `%h` on purpose.
    pub literal: bool,
    /// A path the service needs (the binary, the configuration, the journal, a directory it
    /// writes) under `/tmp` or `/var/tmp`: `PrivateTmp=yes` would give the service an empty
    /// `/tmp` of its own and hide it (the binary: exit 203 before devlogd even runs).
    pub under_tmp: Option<String>,
}

impl ServiceParams {
    /// The portable defaults `systemd/devlogd.service` is rendered with (for
    /// `cargo install` into `~/.cargo/bin`, default XDG directories).
    pub fn repo_defaults_systemd() -> Self {
        ServiceParams {
            binary: "%h/.cargo/bin/devlogd".into(),
            config: None,
            writable: vec![
                "%h/.local/state/devlog".into(),
                "%h/.local/share/devlog".into(),
            ],
            home: "%h".into(),
            literal: false,
            under_tmp: None,
        }
    }

    /// The placeholder paths `launchd/dev.devlog.devlogd.plist` is rendered with: every
    /// path under one `/Users/YOU` to replace (`install` writes the real ones).
    pub fn repo_defaults_launchd() -> Self {
        ServiceParams {
            binary: "/Users/YOU/.cargo/bin/devlogd".into(),
            config: None,
            writable: Vec::new(),
            home: "/Users/YOU".into(),
            literal: true,
            under_tmp: None,
        }
    }

    /// This machine: the running binary and the configuration's paths.
    pub fn for_config(config: &Config) -> Result<Self, Failure> {
        let binary = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|e| {
                Failure::new(exit::USAGE, format!("cannot find devlogd's own path: {e}"))
            })?;
        let mut writable = vec![
            config.dirs.state_dir.display().to_string(),
            config.dirs.data_dir.display().to_string(),
        ];
        if let RemoteConfig::Directory { path, .. } = &config.remote
            && !path.starts_with(&config.dirs.data_dir)
        {
            writable.push(path.display().to_string());
        }
        // Only a file other than the default needs naming: the service finds that one.
        let config_file = if config.file != config.dirs.default_config_file() {
            let absolute = std::path::absolute(&config.file).map_err(|e| {
                Failure::new(
                    exit::USAGE,
                    format!("cannot resolve {}: {e}", config.file.display()),
                )
            })?;
            Some(absolute.display().to_string())
        } else {
            None
        };
        let root = std::path::absolute(&config.root).unwrap_or_else(|_| config.root.clone());
        let under_tmp = [binary.as_path(), root.as_path()]
            .into_iter()
            .chain(config_file.iter().map(Path::new))
            .chain(writable.iter().map(Path::new))
            .find(|p| p.starts_with("/tmp") || p.starts_with("/var/tmp"))
            .map(|p| p.display().to_string());
        Ok(ServiceParams {
            binary: binary.display().to_string(),
            config: config_file,
            writable,
            home: config.dirs.home.display().to_string(),
            literal: true,
            under_tmp,
        })
    }

    /// `devlogd [--config PATH] run`, as argument vector.
    fn run_args(&self) -> Vec<&str> {
        let mut args = vec![self.binary.as_str()];
        if let Some(c) = &self.config {
            args.extend(["--config", c.as_str()]);
        }
        args.push("run");
        args
    }
}

/// One word of a unit file line: `%` (and `$` in command lines) escaped for real paths,
/// quoted when it holds a space, a quote or a backslash.
fn unit_word(s: &str, literal: bool, command: bool) -> String {
    let mut w = s.to_string();
    if literal {
        w = w.replace('%', "%%");
        if command {
            w = w.replace('$', "$$");
        }
    }
    if w.contains([' ', '\t', '"', '\'', '\\']) {
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        w
    }
}

/// The systemd user unit.
pub fn systemd_unit(p: &ServiceParams) -> String {
    let exec: Vec<String> = p
        .run_args()
        .iter()
        .map(|a| unit_word(a, p.literal, true))
        .collect();
    let writable: Vec<String> = p
        .writable
        .iter()
        .map(|w| unit_word(&format!("-{w}"), p.literal, false))
        .collect();
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
ExecStart={exec}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=10s
# Exit 2 is a bad configuration, 7 a missing or wrong encryption passphrase: restarting
# cannot fix either.
RestartPreventExitStatus=2 7
TimeoutStopSec=30s
# No EnvironmentFile=: devlogd reads ~/.config/devlog/credentials itself, on start and on
# every reload, so a rotated key takes effect without a restart.
RuntimeDirectory=devlog
RuntimeDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
{private_tmp}
ProtectSystem=strict
# Everything devlogd writes, by its real path (`devlogd service install` creates them).
# Not StateDirectory=: before systemd 254 it means ~/.config in a user unit.
ReadWritePaths={writable}

[Install]
WantedBy=default.target
",
        exec = exec.join(" "),
        writable = writable.join(" "),
        private_tmp = match p.under_tmp {
            None => "PrivateTmp=yes",
            Some(_) => {
                "# Not PrivateTmp=yes: something the service needs is under /tmp, which a\n# private /tmp would hide (`devlogd service install` said which).\nPrivateTmp=no"
            }
        },
    )
}

/// The launchd agent.
pub fn launchd_plist(p: &ServiceParams) -> String {
    let log = format!("{}/Library/Logs/devlogd.log", p.home);
    let args: String = p
        .run_args()
        .iter()
        .map(|a| format!("\t\t<string>{}</string>\n", xml_escape(a)))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- devlogd: keeps the developer journal backed up. Installed by `devlogd service install`,
     which writes the real paths; launchd expands neither ~ nor variables. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{LAUNCHD_LABEL}</string>
	<key>ProgramArguments</key>
	<array>
{args}	</array>
	<key>RunAtLoad</key>
	<true/>
	<!-- Restarted after a crash only: launchd cannot tell exit 2 (a bad configuration,
	     which restarting cannot fix) from other exits, and must not loop on it. -->
	<key>KeepAlive</key>
	<dict>
		<key>Crashed</key>
		<true/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>ProcessType</key>
	<string>Background</string>
	<!-- 077: the journal's copies, the index and the logs are private. -->
	<key>Umask</key>
	<integer>63</integer>
	<key>StandardOutPath</key>
	<string>{log}</string>
	<key>StandardErrorPath</key>
	<string>{log}</string>
</dict>
</plist>
"#,
        log = xml_escape(&log),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where the service file goes.
fn service_file(dirs: &Dirs, manager: Manager) -> PathBuf {
    match manager {
        Manager::Systemd => {
            let config_home = dirs
                .config_dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dirs.home.join(".config"));
            config_home.join("systemd/user").join(UNIT_NAME)
        }
        Manager::Launchd => dirs
            .home
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")),
    }
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// One command `install` or `uninstall` runs.
struct Step {
    cmd: Vec<String>,
    /// Why its failure is expected and harmless (e.g. unloading what is not loaded).
    may_fail: Option<&'static str>,
}

fn step(cmd: &[&str]) -> Step {
    Step {
        cmd: cmd.iter().map(|x| x.to_string()).collect(),
        may_fail: None,
    }
}

/// The commands that load and (re)start the service. A re-install restarts it, so a new
/// binary or configuration path takes effect.
fn start_steps(manager: Manager, file: &Path) -> Vec<Step> {
    match manager {
        Manager::Systemd => vec![
            step(&["systemctl", "--user", "daemon-reload"]),
            step(&["systemctl", "--user", "enable", UNIT_NAME]),
            step(&["systemctl", "--user", "restart", UNIT_NAME]),
        ],
        Manager::Launchd => {
            let target = format!("gui/{}/{LAUNCHD_LABEL}", uid());
            vec![
                Step {
                    may_fail: Some("not loaded yet"),
                    ..step(&["launchctl", "bootout", &target])
                },
                step(&["launchctl", "enable", &target]),
                step(&[
                    "launchctl",
                    "bootstrap",
                    &format!("gui/{}", uid()),
                    &file.display().to_string(),
                ]),
            ]
        }
    }
}

fn stop_steps(manager: Manager) -> Vec<Step> {
    match manager {
        Manager::Systemd => vec![step(&[
            "systemctl",
            "--user",
            "disable",
            "--now",
            UNIT_NAME,
        ])],
        Manager::Launchd => vec![step(&[
            "launchctl",
            "bootout",
            &format!("gui/{}/{LAUNCHD_LABEL}", uid()),
        ])],
    }
}

fn shell_line(step: &Step) -> String {
    let line = step.cmd.join(" ");
    match step.may_fail {
        Some(why) => format!("{line}    # may fail: {why}"),
        None => line,
    }
}

/// Why a service manager command failed.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error("empty command")]
    Empty,
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// Its combined output (or its exit status when it printed nothing).
    #[error("{0}")]
    Failed(String),
}

/// Run a command; its combined output on failure.
fn run_command(cmd: &[String]) -> Result<String, CommandError> {
    let (program, args) = cmd.split_first().ok_or(CommandError::Empty)?;
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| CommandError::Spawn {
            program: program.clone(),
            source,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        let text = text.trim();
        Err(CommandError::Failed(if text.is_empty() {
            format!("{}", out.status)
        } else {
            text.to_string()
        }))
    }
}

fn command_of(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A daemon started by hand (`devlogd run`) holds the instance lock: the service would start
/// and wait behind it forever, and its failure would look like a bad configuration. Say so,
/// with the way out, before anything is written. The service's own daemon (a reinstall) is
/// fine: the restart replaces it.
fn refuse_a_daemon_outside_the_service(config: &Config, manager: Manager) -> Result<(), Failure> {
    // Only look: checking must not create the state directory or the lock file.
    if !config.state_dir().join("devlogd.lock").exists() {
        return Ok(());
    }
    let holder = match crate::daemon::lock::acquire(config.state_dir()) {
        Ok(_free) => return Ok(()),
        Err(crate::daemon::lock::LockError::Held(holder)) => holder,
        Err(_) => return Ok(()), // the service will say what is wrong with the state dir
    };
    if !holder.daemon || holder.pid.is_none() || holder.pid == service_pid(manager) {
        return Ok(());
    }
    Err(Failure::new(
        exit::USAGE,
        format!(
            "{} outside the service (started by hand with devlogd run?): stop it first with devlogd ctl stop, then run devlogd service install again",
            holder.already_running()
        ),
    ))
}

/// The pid of the service's daemon, when the service manager says it runs one.
fn service_pid(manager: Manager) -> Option<String> {
    let pid = match manager {
        Manager::Systemd => run_command(&command_of(&[
            "systemctl",
            "--user",
            "show",
            "--property=MainPID",
            "--value",
            UNIT_NAME,
        ]))
        .ok()?
        .trim()
        .to_string(),
        Manager::Launchd => {
            let out = run_command(&command_of(&["launchctl", "list", LAUNCHD_LABEL])).ok()?;
            out.lines()
                .find_map(|l| l.trim().strip_prefix("\"PID\" = "))?
                .trim_end_matches(';')
                .to_string()
        }
    };
    (!pid.is_empty() && pid != "0").then_some(pid)
}

/// Whether `systemctl --user` can talk to a user manager at all.
fn systemd_reachable() -> bool {
    run_command(&command_of(&[
        "systemctl",
        "--user",
        "show",
        "--property=Version",
    ]))
    .is_ok()
}

/// Manual steps for when `systemctl --user` cannot be reached (containers, ssh sessions).
fn manual_steps(manager: Manager, file: &Path) -> String {
    let mut steps = String::new();
    if manager == Manager::Systemd {
        steps.push_str(&format!(
            "  loginctl enable-linger {}    # let your services run without a login session\n",
            std::env::var("USER").unwrap_or_else(|_| "$USER".into())
        ));
    }
    for s in start_steps(manager, file) {
        steps.push_str(&format!("  {}\n", shell_line(&s)));
    }
    steps
}

/// The manager answered but the unit did not start: its state and its last log lines.
/// `check` is the command that shows what is wrong with the configuration.
fn systemd_failure_report(check: &str) -> String {
    let mut text = String::new();
    let show = run_command(&command_of(&[
        "systemctl",
        "--user",
        "show",
        UNIT_NAME,
        "--property=ActiveState,SubState,Result,ExecMainStatus",
    ]))
    .unwrap_or_default();
    let prop = |key: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or("?")
            .to_string()
    };
    text.push_str(&format!(
        "{UNIT_NAME} did not start: {} ({}), result {}, exit status {}{}\n",
        prop("ActiveState"),
        prop("SubState"),
        prop("Result"),
        prop("ExecMainStatus"),
        if prop("ExecMainStatus") == "2" {
            format!(" (a bad configuration: `{check}` says what)")
        } else {
            String::new()
        }
    ));
    let journal = [
        "journalctl",
        "--user",
        "-u",
        UNIT_NAME,
        "-n",
        "20",
        "--no-pager",
    ];
    // stdout only: "No journal files were found." and the like go to stderr.
    let lines = Command::new(journal[0])
        .args(&journal[1..])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with("-- ") && !l.trim().is_empty())
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        })
        .unwrap_or_default();
    if lines.is_empty() {
        text.push_str(&format!(
            "Its log: {} (no entries could be read from here)\n",
            journal.join(" ")
        ));
    } else {
        text.push_str(&format!(
            "Its last log lines ({}):\n{lines}",
            journal.join(" ")
        ));
    }
    text
}

/// The manager to render for: the native one, or another with `--dry-run` only.
fn chosen_manager(requested: Option<Manager>, dry_run: bool) -> Result<Manager, Failure> {
    let manager = requested.unwrap_or_else(Manager::native);
    if manager != Manager::native() && !dry_run {
        return Err(Failure::new(
            exit::USAGE,
            format!("--manager {manager:?} works only with --dry-run on this system")
                .to_lowercase(),
        ));
    }
    Ok(manager)
}

pub fn install(
    config: &Config,
    dry_run: bool,
    manager: Option<Manager>,
) -> Result<ExitCode, Failure> {
    let manager = chosen_manager(manager, dry_run)?;
    let params = ServiceParams::for_config(config)?;
    let file = service_file(&config.dirs, manager);
    let content = match manager {
        Manager::Systemd => systemd_unit(&params),
        Manager::Launchd => launchd_plist(&params),
    };
    let steps = start_steps(manager, &file);
    if let (Manager::Systemd, Some(path)) = (manager, &params.under_tmp) {
        println!(
            "Note: {path} is under /tmp, so the unit runs without a private /tmp (PrivateTmp=no), or the service could not see it. /tmp is emptied at boot: keep devlogd, its configuration and the journal somewhere permanent."
        );
    }
    if dry_run {
        println!("Would write {}:\n", file.display());
        println!("{content}");
        println!("Would run:");
        for s in &steps {
            println!("  {}", shell_line(s));
        }
        return Ok(exit::OK);
    }
    refuse_a_daemon_outside_the_service(config, manager)?;
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Failure::new(
            exit::USAGE,
            format!("cannot {what} {}: {e}", path.display()),
        )
    };
    // The unit makes these writable, and only existing directories can be. A configured
    // directory remote is left alone: devlogd never creates it (it may be unmounted).
    let mut create: Vec<PathBuf> =
        vec![config.dirs.state_dir.clone(), config.dirs.data_dir.clone()];
    // The default journal root, which `devlogd run` would create but the service may not.
    let default_root = config.dirs.home.join(".devlog");
    if config.root == default_root {
        create.push(default_root);
    }
    if manager == Manager::Launchd {
        create.push(config.dirs.home.join("Library/Logs"));
    }
    for dir in &create {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    let parent = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    std::fs::write(&file, &content).map_err(|e| io("write", &file, e))?;
    println!("Wrote {}", file.display());
    for s in &steps {
        match run_command(&s.cmd) {
            Ok(_) => println!("Ran {}", s.cmd.join(" ")),
            Err(_) if s.may_fail.is_some() => {}
            Err(e) => {
                println!("`{}` failed: {e}", s.cmd.join(" "));
                if manager == Manager::Systemd && systemd_reachable() {
                    let check = match &params.config {
                        Some(c) => format!("devlogd --config {c} config check"),
                        None => "devlogd config check".to_string(),
                    };
                    print!("{}", systemd_failure_report(&check));
                    println!(
                        "Fix the cause, then run `devlogd service install` again (or `systemctl --user restart {UNIT_NAME}`)."
                    );
                } else if manager == Manager::Systemd {
                    println!(
                        "The service manager cannot be reached from here (no user session bus: a container, or ssh without lingering). To start devlogd, run in your login session:\n{}Or, without a service manager, keep `devlogd run` going in a terminal (or under your own supervisor).",
                        manual_steps(manager, &file)
                    );
                } else {
                    println!(
                        "See `launchctl print gui/{}/{LAUNCHD_LABEL}` and {}/Library/Logs/devlogd.log. The steps were:\n{}",
                        uid(),
                        config.dirs.home.display(),
                        manual_steps(manager, &file)
                    );
                }
                return Ok(exit::FILES_FAILED);
            }
        }
    }
    println!("devlogd is installed and running; `devlogd service status` shows it.");
    Ok(exit::OK)
}

pub fn uninstall(
    config: &Config,
    dry_run: bool,
    manager: Option<Manager>,
) -> Result<ExitCode, Failure> {
    let manager = chosen_manager(manager, dry_run)?;
    let file = service_file(&config.dirs, manager);
    let steps = stop_steps(manager);
    if dry_run {
        println!("Would run:");
        for s in &steps {
            println!("  {}", shell_line(s));
        }
        println!("Would remove {}", file.display());
        return Ok(exit::OK);
    }
    let mut code = exit::OK;
    for s in &steps {
        match run_command(&s.cmd) {
            Ok(_) => println!("Ran {}", s.cmd.join(" ")),
            Err(e) => {
                println!(
                    "`{}` failed ({e}); if devlogd runs, stop it with `devlogd ctl stop`.",
                    s.cmd.join(" ")
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
            return Err(Failure::new(
                exit::USAGE,
                format!("cannot remove {}: {e}", file.display()),
            ));
        }
    }
    if manager == Manager::Systemd {
        let _ = run_command(&command_of(&["systemctl", "--user", "daemon-reload"]));
    }
    Ok(code)
}

/// The manager's view beside the daemon's own status. Works with a broken config file
/// (it is only used to label the daemon's last push).
pub async fn status(dirs: &Dirs, config: Result<Config, ConfigError>) -> Result<ExitCode, Failure> {
    let manager = Manager::native();
    let file = service_file(dirs, manager);
    // The verdict first: whether the journal is safe is the question.
    let daemon = crate::commands::ctl::status(dirs).await;
    match &daemon {
        Ok(status) => {
            if let Some(v) = &status.verdict {
                println!("{}", v.text);
            }
        }
        Err(e) => println!("NOT BACKING UP: {}", e.message),
    }
    println!(
        "service file   {}{}",
        file.display(),
        if file.exists() {
            ""
        } else {
            " (not installed)"
        }
    );
    if let Err(e) = &config {
        println!("config         {e}");
    }
    let query: Vec<String> = match manager {
        Manager::Systemd => command_of(&[
            "systemctl",
            "--user",
            "status",
            UNIT_NAME,
            "--no-pager",
            "--lines=5",
        ]),
        Manager::Launchd => vec![
            "launchctl".into(),
            "print".into(),
            format!("gui/{}/{LAUNCHD_LABEL}", uid()),
        ],
    };
    match Command::new(&query[0]).args(&query[1..]).output() {
        Ok(out) => {
            println!("--- {} ---", query.join(" "));
            print!("{}", String::from_utf8_lossy(&out.stdout));
            print!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Err(e) => println!("cannot run {}: {e}", query[0]),
    }
    println!("--- devlogd ctl status ---");
    match daemon {
        Ok(status) => {
            println!("{}", crate::commands::ctl::status_text(&status));
            Ok(crate::exit::OK)
        }
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
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::write(
            root.join("systemd/devlogd.service"),
            systemd_unit(&ServiceParams::repo_defaults_systemd()),
        )
        .unwrap();
        std::fs::write(
            root.join("launchd/dev.devlog.devlogd.plist"),
            launchd_plist(&ServiceParams::repo_defaults_launchd()),
        )
        .unwrap();
    }

    #[test]
    fn repository_files_are_the_templates_rendered() {
        assert_eq!(
            systemd_unit(&ServiceParams::repo_defaults_systemd()),
            include_str!("../../systemd/devlogd.service"),
            "systemd/devlogd.service drifted from the template: regenerate it"
        );
        assert_eq!(
            launchd_plist(&ServiceParams::repo_defaults_launchd()),
            include_str!("../../launchd/dev.devlog.devlogd.plist"),
            "launchd/dev.devlog.devlogd.plist drifted from the template: regenerate it"
        );
    }

    fn machine(config: Option<&str>) -> ServiceParams {
        ServiceParams {
            binary: "/opt/bin/devlogd".into(),
            config: config.map(String::from),
            writable: vec![
                "/home/u/.local/state/devlog".into(),
                "/home/u/.local/share/devlog".into(),
                "/srv/mirror".into(),
            ],
            home: "/home/u".into(),
            literal: true,
            under_tmp: None,
        }
    }

    #[test]
    fn a_path_under_tmp_turns_the_private_tmp_off_and_says_why() {
        let mut p = machine(None);
        p.under_tmp = Some("/tmp/build/devlogd".into());
        let unit = systemd_unit(&p);
        assert!(unit.lines().any(|l| l == "PrivateTmp=no"), "{unit}");
        assert!(!unit.lines().any(|l| l == "PrivateTmp=yes"), "{unit}");
        assert!(unit.contains("# Not PrivateTmp=yes: something the service needs is under /tmp"));
        assert!(
            systemd_unit(&machine(None))
                .lines()
                .any(|l| l == "PrivateTmp=yes")
        );
    }

    #[test]
    fn unit_has_the_settings_that_matter() {
        let unit = systemd_unit(&machine(None));
        for line in [
            "Type=notify",
            "ExecStart=/opt/bin/devlogd run",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartPreventExitStatus=2 7",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectSystem=strict",
            "RuntimeDirectory=devlog",
            "ReadWritePaths=-/home/u/.local/state/devlog -/home/u/.local/share/devlog -/srv/mirror",
            "UMask=0077",
            "WantedBy=default.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "missing {line}:\n{unit}");
        }
        assert!(
            !unit.contains("network-online"),
            "no network target dependency"
        );
        // StateDirectory= is ~/.config before systemd 254; EnvironmentFile= would pin the
        // credentials until a restart.
        for setting in ["StateDirectory=", "EnvironmentFile="] {
            assert!(
                !unit.lines().any(|l| l.starts_with(setting)),
                "{setting} must not be used:\n{unit}"
            );
        }
    }

    #[test]
    fn unit_passes_config_and_escapes_real_paths() {
        let unit = systemd_unit(&machine(Some("/home/u/my conf/100%.toml")));
        assert!(
            unit.lines()
                .any(|l| l
                    == r#"ExecStart=/opt/bin/devlogd --config "/home/u/my conf/100%%.toml" run"#),
            "{unit}"
        );
        let mut p = machine(None);
        p.binary = "/opt/$HOME/devlogd".into();
        p.writable = vec!["/srv/back up".into()];
        let unit = systemd_unit(&p);
        assert!(
            unit.lines()
                .any(|l| l == "ExecStart=/opt/$$HOME/devlogd run"),
            "{unit}"
        );
        assert!(
            unit.lines()
                .any(|l| l == r#"ReadWritePaths="-/srv/back up""#),
            "{unit}"
        );
    }

    #[test]
    fn plist_has_real_paths_the_config_and_no_restart_loop() {
        let plist = launchd_plist(&machine(Some("/home/u/c.toml")));
        assert!(
            !plist.contains('%'),
            "launchd expands no specifiers:\n{plist}"
        );
        assert!(
            plist.contains(
                "<string>/opt/bin/devlogd</string>\n\t\t<string>--config</string>\n\t\t<string>/home/u/c.toml</string>\n\t\t<string>run</string>"
            ),
            "{plist}"
        );
        assert!(plist.contains("<string>/home/u/Library/Logs/devlogd.log</string>"));
        assert!(
            !plist.contains("SuccessfulExit"),
            "exit 2 would loop:\n{plist}"
        );
        let repo = launchd_plist(&ServiceParams::repo_defaults_launchd());
        assert!(!repo.contains('%'), "{repo}");
    }

    #[test]
    fn a_foreign_manager_is_only_rendered() {
        let other = match Manager::native() {
            Manager::Systemd => Manager::Launchd,
            Manager::Launchd => Manager::Systemd,
        };
        assert!(chosen_manager(Some(other), true).is_ok());
        assert_eq!(
            chosen_manager(Some(other), false).unwrap_err().code,
            exit::USAGE
        );
        assert_eq!(chosen_manager(None, false).unwrap(), Manager::native());
    }
}
