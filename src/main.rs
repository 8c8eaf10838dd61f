//! The `devlogd` command line: parsing and dispatch only.

use clap::{CommandFactory, Parser, Subcommand};
use devlogd::commands::service::Manager;
use devlogd::commands::{self, Failure, exit};
use devlogd::config::{Config, Dirs};
use devlogd::exit::ExitCode;
use devlogd::push::PushFlags;
use std::path::PathBuf;

/// Keeps ~/.devlog backed up to Azure Blob Storage (or a local mirror), pushing only what
/// changed.
#[derive(Parser)]
#[command(name = "devlogd", version = commands::docs::VERSION)]
struct Cli {
    #[command(flatten)]
    global: commands::global_args::GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Push what changed, once (through the running daemon when there is one).
    Push {
        #[command(flatten)]
        flags: PushFlags,
        /// Print the report as one JSON object on stdout (also on failure).
        #[arg(long)]
        json: bool,
    },
    /// Download the backup (or its state as of --at) into the journal root or --to DIR;
    /// local files that differ are left alone unless --overwrite.
    Restore {
        #[command(flatten)]
        args: commands::restore::RestoreArgs,
    },
    /// Bring the remote's changes down into the journal root, once (two-way sync's pull
    /// pass; without the daemon): what changed there is downloaded, what was deleted there
    /// is deleted here, and a file changed on both sides keeps the remote's version beside
    /// it as NAME.sync-conflict-DATE-TIME-HOST.EXT.
    Pull {
        #[command(flatten)]
        args: commands::pull::PullArgs,
    },
    /// The versions of one file on the remote: when written, when replaced, size, MD5, writer.
    History {
        /// The file: relative to the journal root, to the current directory when that is
        /// inside the journal, or an absolute path below the root.
        path: String,
        /// Print the versions as one JSON object on stdout (also on failure).
        #[arg(long)]
        json: bool,
    },
    /// Remove history versions older than sync.keep_versions_days (never current files).
    Prune {
        /// Print the report as one JSON object on stdout (also on failure).
        #[arg(long)]
        json: bool,
    },
    /// List the paths another writer changed too (conflict copies, flagged paths).
    Conflicts {
        /// Download the other writer's versions next to the local files as NAME.theirs.
        #[arg(long, conflicts_with = "resolve")]
        fetch: bool,
        /// Settle PATH's two-way conflict (its sync-conflict files) and push the result.
        #[arg(long, value_name = "PATH", requires = "keep")]
        resolve: Option<String>,
        /// With --resolve: mine keeps the file at PATH as it is here (its conflict files are
        /// deleted); theirs puts the conflict file's version at PATH (the replaced one stays in
        /// the history).
        #[arg(long, value_enum, requires = "resolve")]
        keep: Option<commands::resolve::Keep>,
        /// Print the report as one JSON object on stdout (also on failure).
        #[arg(long)]
        json: bool,
    },
    /// Compare every local file with the remote by MD5 (exit 1 if anything differs).
    Verify {
        /// Print the report as one JSON object on stdout (also on failure).
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon: watch the journal and push changes as they happen (logs to stderr).
    Run {
        /// Accepted for service managers; devlogd always stays in the foreground.
        #[arg(long)]
        foreground: bool,
    },
    /// Talk to the running daemon over its control socket.
    Ctl {
        #[command(subcommand)]
        command: devlogd::protocol::Command,
    },
    /// Install or remove the background service (systemd user unit; launchd agent on macOS).
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// The encryption key ([encryption]): show it, change its passphrase, keep a recovery copy.
    Key {
        #[command(subcommand)]
        command: commands::key::KeyCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    #[command(flatten)]
    Docs(commands::docs::DocsCommand),
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Write the unit (or plist) for this binary and --config, then enable and (re)start it.
    Install {
        /// Print the file and the commands; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Render for another service manager (systemd or launchd); only with --dry-run.
        #[arg(long, hide = true, value_name = "MANAGER")]
        manager: Option<Manager>,
    },
    /// Stop and disable the service and remove its file.
    Uninstall {
        /// Print the commands and the file; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Render for another service manager (systemd or launchd); only with --dry-run.
        #[arg(long, hide = true, value_name = "MANAGER")]
        manager: Option<Manager>,
    },
    /// The service manager's view beside the daemon's own status.
    Status,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write a commented config.toml and a private credentials template (never over a file
    /// that exists), then say what to do next.
    Init {
        /// The remote to back up to: https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]
        /// or file:///a/directory (checked before anything is written).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Validate the config file and print the effective configuration (secrets as ***).
    Check {
        /// Also reach the remote with the credentials: reachable, authenticated, container
        /// there, may write (lists one page; writes nothing).
        #[arg(long)]
        online: bool,
        /// With --online: put and delete one small probe blob under the prefix.
        #[arg(long, requires = "online")]
        write_test: bool,
    },
}

impl Command {
    /// Whether the command was asked for `--json` (then stdout holds one JSON object).
    fn json(&self) -> bool {
        match self {
            Command::Push { json, .. }
            | Command::Verify { json }
            | Command::Conflicts { json, .. } => *json,
            Command::Pull { args } => args.json,
            Command::Ctl { command } => command.json_output(),
            _ => false,
        }
    }
}

fn main() {
    // Before any HTTP client exists, whichever command builds one (the clients install it
    // too, for other users of the library).
    devlogd::remote::tls::install_crypto_provider();
    if commands::journal_cli::invoked_as_devlog() {
        commands::journal_cli::main(); // one binary, two names: see src/bin/devlog.rs
    }
    // Before any credential is read: no secret may end up in a core dump.
    devlogd::machine::forbid_core_dumps();
    devlogd::machine::return_freed_buffers();
    let cli = Cli::parse();
    let daemon = matches!(cli.command, Command::Run { .. });
    if !daemon {
        devlogd::ui::end_quietly_on_closed_output();
    }
    let level = if daemon { "info" } else { "warn" };
    devlogd::logging::init(level, cli.global.verbose);
    let json = cli.command.json();
    commands::exit_with("devlogd", json, run(cli));
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let command = match cli.command {
        Command::Docs(docs) => return docs.run(Cli::command()),
        // `ctl` needs only the socket, which depends on the environment, not on the
        // configuration: a broken config.toml must not lock anyone out of a running daemon.
        Command::Ctl { command } => return ctl(cli.global.config, command),
        // Before any config is loaded: it is what this writes.
        Command::Config {
            command: ConfigCommand::Init { url },
        } => {
            let dirs = Dirs::from_env()?;
            return commands::config_init::run(&dirs, cli.global.config.as_deref(), url.as_deref());
        }
        Command::Service {
            command: ServiceCommand::Status,
        } => {
            let dirs = Dirs::from_env()?;
            let config = Config::load(cli.global.config.as_deref());
            return commands::runtime()?
                .block_on(devlogd::commands::service::status(&dirs, config));
        }
        command => command,
    };
    let config = Config::load(cli.global.config.as_deref())?;
    match command {
        Command::Config {
            command: ConfigCommand::Check { online, write_test },
        } => {
            let code = commands::config_check::run(&config)?;
            if !online {
                return Ok(code);
            }
            commands::runtime()?.block_on(commands::config_online::run(&config, write_test))
        }
        Command::Config {
            command: ConfigCommand::Init { .. },
        } => unreachable!("handled before the configuration is loaded"),
        Command::Push { flags, json } => {
            let args = commands::push::PushArgs { flags, json };
            commands::runtime()?.block_on(commands::push::run(&config, &args))
        }
        Command::Restore { args } => {
            commands::runtime()?.block_on(commands::restore::run(&config, &args))
        }
        Command::Pull { args } => {
            commands::runtime()?.block_on(commands::pull::run(&config, &args))
        }
        Command::History { path, json } => {
            commands::runtime()?.block_on(commands::history::run(&config, &path, json))
        }
        Command::Key { command } => {
            commands::runtime()?.block_on(commands::key::run(&config, &command))
        }
        Command::Prune { json } => {
            commands::runtime()?.block_on(commands::prune::run(&config, json))
        }
        Command::Verify { json } => {
            commands::runtime()?.block_on(commands::verify::run(&config, json))
        }
        Command::Conflicts {
            resolve: Some(path),
            keep: Some(keep),
            json,
            ..
        } => commands::runtime()?.block_on(commands::resolve::run(&config, &path, keep, json)),
        Command::Conflicts { fetch, json, .. } => {
            commands::runtime()?.block_on(commands::conflicts::run(&config, fetch, json))
        }
        Command::Run { foreground: _ } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| Failure::new(exit::USAGE, format!("cannot start the runtime: {e}")))?;
            // The daemon re-reads the same file on reload.
            let result = runtime.block_on(devlogd::daemon::run(cli.global.config, config));
            // Work stuck in a blocking section (a long hash) does not hold up the exit.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            Ok(result?)
        }
        Command::Service { command } => match command {
            ServiceCommand::Install { dry_run, manager } => {
                devlogd::commands::service::install(&config, dry_run, manager)
            }
            ServiceCommand::Uninstall { dry_run, manager } => {
                devlogd::commands::service::uninstall(&config, dry_run, manager)
            }
            ServiceCommand::Status => Ok(exit::OK),
        },
        Command::Ctl { .. } | Command::Docs(_) => Ok(exit::OK),
    }
}

/// `devlogd ctl …`: the configuration is read only to label a push report, and a broken
/// one does not stop the request (the daemon reports its own view, e.g. on reload).
fn ctl(
    config_path: Option<PathBuf>,
    command: devlogd::protocol::Command,
) -> Result<ExitCode, Failure> {
    let dirs = Dirs::from_env()?;
    let config = Config::load(config_path.as_deref()).ok();
    commands::runtime()?.block_on(devlogd::commands::ctl::run(&dirs, config.as_ref(), command))
}
