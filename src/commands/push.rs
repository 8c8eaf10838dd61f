//! `devlogd push`: one run of the pipeline without a daemon.

use super::{Failure, exit, hostname};
use crate::config::{Config, RemoteConfig};
use crate::exit::ExitCode;
use crate::push::{self, PushContext, PushFlags, PushOptions};
use crate::remote::Remote;
use crate::session::{DamagedIndex, Session};
use crate::ui::{self, Progress};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct PushArgs {
    pub flags: PushFlags,
    pub json: bool,
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
pub fn route(config: &Config) -> Result<Route, Failure> {
    match crate::daemon::lock::acquire(config.state_dir()) {
        Ok(lock) => Ok(Route::Direct(lock)),
        Err(held) => {
            let socket = crate::daemon::control::socket_path(config);
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                Ok(Route::Daemon { socket })
            } else {
                Err(Failure::new(
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
pub async fn run(config: &Config, args: &PushArgs) -> Result<ExitCode, Failure> {
    let unlocked = unlocked_remote(config, true).await?;
    match route(config)? {
        Route::Daemon { socket } => {
            eprintln!(
                "devlogd is running: pushing through it ({}).",
                socket.display()
            );
            forward(config, args).await
        }
        Route::Direct(_lock) => run_direct(config, unlocked, args).await,
    }
}

/// With encryption on and no daemon answering, the remote with its key unlocked before
/// the instance lock is taken: a missing or wrong passphrase writes nothing, not even the
/// lock. A running daemon has unlocked its own key.
pub async fn unlocked_remote(
    config: &Config,
    create: bool,
) -> Result<Option<Arc<dyn Remote>>, Failure> {
    let socket = crate::daemon::control::socket_path(config);
    if !config.encryption.enabled || std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return Ok(None);
    }
    let remote = crate::session::open_remote(config).map_err(|e| Failure::usage(e.to_string()))?;
    crate::session::ready(remote.as_ref(), create).await?;
    Ok(Some(remote))
}

/// Ask the running daemon to push, with the same output as `devlogd ctl push`.
pub async fn forward(config: &Config, args: &PushArgs) -> Result<ExitCode, Failure> {
    let cmd = crate::protocol::Command::Push {
        flags: args.flags,
        wait: true,
        json: args.json,
    };
    crate::commands::ctl::run(&config.dirs, Some(config), cmd).await
}

/// Run the pipeline in this process (the caller holds the instance lock).
pub async fn run_direct(
    config: &Config,
    remote: Option<Arc<dyn Remote>>,
    args: &PushArgs,
) -> Result<ExitCode, Failure> {
    let progress = Progress::new(args.json);
    let result = push_here(config, remote, args.flags, &progress).await?;
    progress.finish();
    let (root, remote_name) = (config.root.display().to_string(), result.remote);
    match result.outcome {
        Ok(report) => {
            if args.json {
                println!("{}", json(&report));
            } else {
                println!("{}", ui::push_summary(&report, &root, &remote_name));
            }
            Ok(report.exit_code())
        }
        Err(e) => {
            let error = Failure::new(e.exit_code(), e.to_string());
            if let (true, Some(report)) = (args.json, e.partial_report()) {
                println!("{}", json(report));
                return Err(error.json_printed());
            }
            Err(error)
        }
    }
}

/// One push in this process, reported rather than printed (the caller holds the lock).
pub struct PushedHere {
    /// The remote, described for people.
    pub remote: String,
    pub outcome: Result<push::PushReport, push::PushError>,
}

pub async fn push_here(
    config: &Config,
    remote: Option<Arc<dyn Remote>>,
    flags: PushFlags,
    progress: &Progress,
) -> Result<PushedHere, Failure> {
    let session = Session::open_with(config.clone(), remote)?;
    crate::session::ready(session.remote.as_ref(), true).await?;
    let mut state = session.open_index(if flags.all {
        DamagedIndex::Rebuild
    } else {
        DamagedIndex::Refuse
    })?;
    let Session { filter, remote, .. } = session;
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
    let options = PushOptions::new(flags, &config.sync);
    let host = hostname();
    let ctx = PushContext {
        root: &config.root,
        filter: &filter,
        remote: remote.as_ref(),
        state: &mut state,
        host: &host,
    };
    let outcome = push::run(ctx, &options, &|event| progress.event(event)).await;
    Ok(PushedHere {
        remote: remote.describe(),
        outcome,
    })
}

fn json(value: &impl serde::Serialize) -> String {
    super::to_json(value)
}
