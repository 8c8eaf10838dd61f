//! The `devlogd` command line: parsing and dispatch only.

use clap::{Parser, Subcommand};
use devlogd::commands::{self, CliError, exit};
use devlogd::config::{Config, OnConflict};
use std::path::PathBuf;

/// Keeps ~/.devlog backed up to Azure Blob Storage (or a local mirror), pushing only what
/// changed.
#[derive(Parser)]
#[command(name = "devlogd", version)]
struct Cli {
    /// Config file (default: the platform config dir's devlog/config.toml; or $DEVLOG_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// More log output on stderr (-v debug, -vv trace); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Push what changed, once (through the running daemon when there is one).
    Push {
        /// Also list the remote and repair blobs that are missing or differ.
        #[arg(long)]
        all: bool,
        /// Upload every file, changed or not.
        #[arg(long)]
        force: bool,
        /// Hash every file instead of trusting size and times (finds edits whose
        /// timestamps were put back).
        #[arg(long)]
        checksum: bool,
        /// Show what would be uploaded; change nothing anywhere.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// What to do when another writer changed a blob: keep-both, overwrite or skip.
        #[arg(long, value_name = "POLICY")]
        on_conflict: Option<OnConflict>,
        /// Carry out deletes the mass-delete guard holds (more than 50 files or 10 % of
        /// the index in one pass).
        #[arg(long)]
        allow_deletes: bool,
    },
    /// Download the backup (or its state as of --at) into the journal root or --to DIR;
    /// local files that differ are left alone unless --overwrite.
    Restore {
        /// Restore into this directory instead of the journal root.
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// The backup as it was at this time (RFC 3339, or a date: the end of that day, UTC).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Show what would be restored; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replace local files that differ, keeping each as NAME.local-TIME.
        #[arg(long)]
        overwrite: bool,
        #[arg(long)]
        json: bool,
        /// Only these files or directories (journal-relative).
        paths: Vec<String>,
    },
    /// The versions of one file on the remote: when written, when replaced, size, MD5, writer.
    History {
        path: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove history versions older than sync.keep_versions_days (never current files).
    Prune {
        #[arg(long)]
        json: bool,
    },
    /// Compare every local file with the remote by MD5 (exit 1 if anything differs).
    Verify {
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
        command: CtlCommand,
    },
    /// Install or remove the background service (systemd user unit; launchd agent on macOS).
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum CtlCommand {
    /// What the daemon is doing: state, pending paths, last push, last error, …
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Push now through the daemon; waits and prints the report unless --no-wait.
    Push {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        force: bool,
        /// Hash every file instead of trusting size and times.
        #[arg(long)]
        checksum: bool,
        #[arg(long)]
        dry_run: bool,
        /// Return as soon as the push is queued.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
        /// What to do when another writer changed a blob: keep-both, overwrite or skip.
        #[arg(long, value_name = "POLICY")]
        on_conflict: Option<OnConflict>,
        /// Carry out deletes the mass-delete guard holds (more than 50 files or 10 % of
        /// the index in one pass).
        #[arg(long)]
        allow_deletes: bool,
    },
    /// Stop pushing (changes are still collected).
    Pause,
    /// Push again, starting with what changed while paused.
    Resume,
    /// Re-read the configuration (like SIGHUP); a bad one is refused and the old one kept.
    Reload,
    /// Stop the daemon gracefully.
    Stop,
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Write the unit (or plist) for this binary, then enable and start it.
    Install {
        /// Print the file and the commands; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop and disable the service and remove its file.
    Uninstall {
        #[arg(long)]
        dry_run: bool,
    },
    /// The service manager's view beside the daemon's own status.
    Status,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config file and print the effective configuration (secrets as ***).
    Check,
}

fn main() {
    // Before any credential is read: no secret may end up in a core dump.
    devlogd::machine::forbid_core_dumps();
    let cli = Cli::parse();
    let level = if matches!(cli.command, Command::Run { .. }) {
        "info"
    } else {
        "warn"
    };
    devlogd::logging::init(level, cli.verbose);
    commands::exit_with("devlogd", run(cli));
}

fn run(cli: Cli) -> Result<i32, CliError> {
    let config = Config::load(cli.config.as_deref())?;
    // The daemon re-reads the same file on reload.
    let cli_config = cli.config.clone();
    let cli = Cli {
        config: cli_config,
        ..cli
    };
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => commands::config_check::run(&config),
        Command::Push {
            all,
            force,
            checksum,
            dry_run,
            json,
            on_conflict,
            allow_deletes,
        } => {
            let args = commands::push::PushArgs {
                all,
                force,
                checksum,
                dry_run,
                json,
                on_conflict,
                allow_deletes,
            };
            runtime()?.block_on(commands::push::run(&config, &args))
        }
        Command::Restore {
            to,
            at,
            dry_run,
            overwrite,
            json,
            paths,
        } => {
            let args = commands::restore::RestoreArgs {
                to,
                at,
                dry_run,
                overwrite,
                json,
                paths,
            };
            runtime()?.block_on(commands::restore::run(&config, &args))
        }
        Command::History { path, json } => {
            runtime()?.block_on(commands::history::run(&config, &path, json))
        }
        Command::Prune { json } => runtime()?.block_on(commands::prune::run(&config, json)),
        Command::Verify { json } => runtime()?.block_on(commands::verify::run(&config, json)),
        Command::Run { foreground: _ } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| {
                    CliError::new(exit::USAGE, format!("cannot start the runtime: {e}"))
                })?;
            let result = runtime.block_on(devlogd::daemon::run(cli.config, config));
            // Work stuck in a blocking section (a long hash) does not hold up the exit.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        }
        Command::Service { command } => match command {
            ServiceCommand::Install { dry_run } => devlogd::service::install(&config, dry_run),
            ServiceCommand::Uninstall { dry_run } => devlogd::service::uninstall(&config, dry_run),
            ServiceCommand::Status => runtime()?.block_on(devlogd::service::status(&config)),
        },
        Command::Ctl { command } => {
            use devlogd::protocol::Command as P;
            let (cmd, json) = match command {
                CtlCommand::Status { json } => (P::Status, json),
                CtlCommand::Push {
                    all,
                    force,
                    checksum,
                    dry_run,
                    no_wait,
                    json,
                    on_conflict,
                    allow_deletes,
                } => (
                    P::Push {
                        all,
                        force,
                        checksum,
                        dry_run,
                        wait: !no_wait,
                        on_conflict,
                        allow_deletes,
                    },
                    json,
                ),
                CtlCommand::Pause => (P::Pause, false),
                CtlCommand::Resume => (P::Resume, false),
                CtlCommand::Reload => (P::Reload, false),
                CtlCommand::Stop => (P::Stop, false),
            };
            runtime()?.block_on(devlogd::ctl::run(&config, cmd, json))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(exit::USAGE, format!("cannot start the runtime: {e}")))
}
