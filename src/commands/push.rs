//! `devlogd push`: one run of the pipeline without a daemon.

use super::{CliError, exit, filter_for, hostname, remote_setup_error, require_root};
use crate::config::{Config, OnConflict, RemoteConfig};
use crate::push::{self, PushContext, PushOptions};
use crate::retry::RetryPolicy;
use crate::state::StateIndex;
use crate::ui::{self, Progress};

#[derive(Debug, Clone, Default)]
pub struct PushArgs {
    pub all: bool,
    pub force: bool,
    pub checksum: bool,
    pub dry_run: bool,
    pub json: bool,
    pub on_conflict: Option<OnConflict>,
    pub allow_deletes: bool,
}

/// Who runs a push: the running daemon (only it writes the index), or this process.
pub enum Route {
    Daemon {
        socket: std::path::PathBuf,
    },
    /// No daemon: this process holds the instance lock for the duration of the push.
    Direct(crate::daemon::lock::InstanceLock),
}

/// Take the instance lock, or find the daemon that holds it.
pub fn route(config: &Config) -> Result<Route, CliError> {
    match crate::daemon::lock::acquire(config.state_dir()) {
        Ok(lock) => Ok(Route::Direct(lock)),
        Err(held) => {
            let socket = crate::daemon::control::socket_path(config);
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                Ok(Route::Daemon { socket })
            } else {
                Err(CliError::new(
                    exit::USAGE,
                    format!(
                        "{held}, but its control socket {} does not answer: run this with the daemon's XDG_RUNTIME_DIR, or stop the daemon",
                        socket.display()
                    ),
                ))
            }
        }
    }
}

/// `devlogd push`: through the daemon when one runs (two writers must not share the
/// index), otherwise directly.
pub async fn run(config: &Config, args: &PushArgs) -> Result<i32, CliError> {
    match route(config)? {
        Route::Daemon { socket } => {
            eprintln!(
                "devlogd is running: pushing through it ({}).",
                socket.display()
            );
            forward(config, args).await
        }
        Route::Direct(_lock) => run_direct(config, args).await,
    }
}

/// Ask the running daemon to push, with the same output as `devlogd ctl push`.
pub async fn forward(config: &Config, args: &PushArgs) -> Result<i32, CliError> {
    let cmd = crate::protocol::Command::Push {
        all: args.all,
        force: args.force,
        checksum: args.checksum,
        dry_run: args.dry_run,
        wait: true,
        on_conflict: args.on_conflict,
        allow_deletes: args.allow_deletes,
    };
    crate::ctl::run(config, cmd, args.json).await
}

/// Run the pipeline in this process (the caller holds the instance lock).
pub async fn run_direct(config: &Config, args: &PushArgs) -> Result<i32, CliError> {
    require_root(config)?;
    let filter = filter_for(config)?;
    let remote = crate::remote::open(config).map_err(remote_setup_error)?;
    if let RemoteConfig::Directory {
        path,
        embedded_default: true,
    } = &config.remote
    {
        eprintln!(
            "No remote configured: mirroring into {} (set remote.url in {} to push to Azure).",
            path.display(),
            config.file.display()
        );
    }
    let mut state = open_state(config, args.all)?;
    let options = PushOptions {
        all: args.all,
        force: args.force,
        checksum: args.checksum,
        dry_run: args.dry_run,
        on_conflict: args.on_conflict.unwrap_or(config.sync.on_conflict),
        deletes: config.sync.deletes,
        allow_deletes: args.allow_deletes,
        concurrency: config.sync.concurrency,
        paths: None,
        retry: RetryPolicy::default(),
        cancel: None,
    };
    let progress = Progress::new(args.json);
    let host = hostname();
    let ctx = PushContext {
        root: &config.root,
        filter: &filter,
        remote: remote.as_ref(),
        state: &mut state,
        host: &host,
    };
    let result = push::run(ctx, &options, &|event| progress.event(event)).await;
    progress.finish();
    let root = config.root.display().to_string();
    let remote_name = remote.describe();
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", json(&report));
            } else {
                println!("{}", ui::push_summary(&report, &root, &remote_name));
            }
            Ok(if report.is_clean() {
                exit::OK
            } else {
                exit::FILES_FAILED
            })
        }
        Err(e) => {
            if let (true, Some(report)) = (args.json, e.partial_report()) {
                println!("{}", json(report));
            }
            Err(CliError::new(e.exit_code(), e.to_string()))
        }
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Open the remote's index; with `--all`, a damaged one is set aside and rebuilt.
fn open_state(config: &Config, all: bool) -> Result<StateIndex, CliError> {
    let identity = config.remote.identity();
    match StateIndex::open(config.state_dir(), &identity) {
        Ok(s) => Ok(s),
        Err(e) if all && e.is_rebuildable() => {
            let aside = StateIndex::move_aside(config.state_dir(), &identity).map_err(|io| {
                CliError::new(exit::USAGE, format!("{e}; moving it aside failed: {io}"))
            })?;
            eprintln!(
                "The state index was unusable ({e}); kept it as {} and rebuilding from the remote.",
                aside.display()
            );
            StateIndex::open(config.state_dir(), &identity)
                .map_err(|e| CliError::new(exit::USAGE, e.to_string()))
        }
        Err(e) => Err(CliError::new(exit::USAGE, e.to_string())),
    }
}
