//! The `devlogd` command line: parsing and dispatch only.

use clap::{Parser, Subcommand};
use devlogd::commands::{self, CliError, exit};
use devlogd::config::{Config, OnConflict};
use std::path::PathBuf;

/// Keeps ~/.devlog backed up to Azure Blob Storage (or a local mirror), pushing only what
/// changed.
#[derive(Parser)]
#[command(name = "devlogd", version, about, long_about = None)]
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
    /// Push what changed since the last push, once, without a daemon.
    Push {
        /// Also list the remote and repair blobs that are missing or differ.
        #[arg(long)]
        all: bool,
        /// Upload every file, changed or not.
        #[arg(long)]
        force: bool,
        /// Show what would be uploaded; change nothing anywhere.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// What to do when another writer changed a blob: keep-both, overwrite or skip.
        #[arg(long, value_name = "POLICY")]
        on_conflict: Option<OnConflict>,
    },
    /// Compare every local file with the remote by MD5 (exit 1 if anything differs).
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config file and print the effective configuration (secrets as ***).
    Check,
}

fn main() {
    let cli = Cli::parse();
    devlogd::logging::init("warn", cli.verbose);
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("devlogd: {}", devlogd::redact::scrub(&e.message));
            e.code
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32, CliError> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => commands::config_check::run(&config),
        Command::Push {
            all,
            force,
            dry_run,
            json,
            on_conflict,
        } => {
            let args = commands::push::PushArgs {
                all,
                force,
                dry_run,
                json,
                on_conflict,
            };
            runtime()?.block_on(commands::push::run(&config, &args))
        }
        Command::Verify { json } => runtime()?.block_on(commands::verify::run(&config, json)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(exit::USAGE, format!("cannot start the runtime: {e}")))
}
