//! `devlogd run`: the daemon. Start-up order, task layout and shutdown live here.
//!
//! Tasks (one owner per piece of state, as in mini-redis):
//! - the watcher thread (notify) fills an [`watch::EventSink`];
//! - the queue task owns the dirty set ([`queue::DirtyQueue`]) and hands ready batches to
//! - the worker task, which owns the pipeline, the state index and its part of the status;
//! - the alert task runs `[alert] command` when the verdict stays unsafe ([`alert`]);
//! - the control server answers `devlogd ctl` on a Unix socket (`ctl status` is
//!   [`status::Sources::project`]: the worker's and the queue's parts, the watcher's health);
//! - this supervisor handles signals and reloads and runs the shutdown, and ends the
//!   process (exit 1, restarted by the service manager) if the worker dies.
//!
//! Every loop selects on one [`CancellationToken`]; stop waits for the tasks with a bound.

pub mod alert;
pub mod control;
#[cfg(target_os = "linux")]
pub mod inotify;
pub mod lock;
pub mod queue;
pub mod queue_task;
pub mod reach;
pub mod sd_notify;
pub mod status;
pub mod watch;
pub mod worker;
#[cfg(test)]
mod worker_tests;

use crate::config::Config;
use crate::exit::{self, ExitCode, Failure};
use crate::machine::hostname;
use crate::remote::Remote;
use crate::session::Session;
use crate::state::{StateError, StateIndex};
use futures::StreamExt;
use queue_task::{QueueSettings, QueueStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use watch::{EventSink, RescanReason};
use worker::{Setup, Worker, WorkerCmd};

/// How long in-flight uploads may take to finish on stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A reload asked for over the control socket (SIGHUP needs no reply).
pub struct ReloadRequest {
    pub reply: oneshot::Sender<Result<(), Failure>>,
}

/// Build everything one configuration needs, or say why it cannot be used.
fn build_setup(config: Config, remote: Option<Arc<dyn Remote>>) -> Result<Setup, Failure> {
    let Session {
        config,
        filter,
        remote,
    } = Session::open_with(config, remote)?;
    let mut warnings = Vec::new();
    if let Some(shadowed) = crate::session::shadowed_credential(&config) {
        tracing::warn!("{shadowed}");
        warnings.push(shadowed);
    }
    let identity = config.remote.identity();
    let (state, index_read_only) = match StateIndex::open(config.state_dir(), &identity) {
        Ok(state) => (state, false),
        // Written by a newer devlogd: do what `push --all` does. Exiting (2) would
        // leave the journal unprotected until someone looks, and systemd never
        // restarts it. Rebuilding loses nothing: the newer index is kept aside, a
        // fresh index has no rows so nothing is deleted, and the first full pass
        // lists the remote and adopts every blob whose MD5 equals the file's (one
        // that differs goes to the conflict policy, which keeps both).
        Err(e @ StateError::UnknownSchema { .. }) => {
            let aside = StateIndex::move_aside(config.state_dir(), &identity)
                .map_err(|io| Failure::usage(format!("{e}; moving it aside failed: {io}")))?;
            let note = format!(
                "the state index was written by a newer devlogd; kept it as {} and rebuilt it from the remote (an upgraded devlogd can use either)",
                aside.display()
            );
            tracing::warn!("{note}");
            warnings.push(note);
            let state = StateIndex::open(config.state_dir(), &identity)
                .map_err(|e| Failure::usage(e.to_string()))?;
            (state, false)
        }
        // Run anyway, in state `error` and retrying: the fix is a chmod, a remount or
        // freeing space (a full state filesystem is `Other`), and the service manager
        // would not restart a daemon that exits 2 here — that is for configuration
        // errors. The stand-in is never pushed with (see `Worker::reopen_index`).
        Err(e @ (StateError::ReadOnly { .. } | StateError::Other { .. })) => {
            tracing::warn!("{e}");
            let stand_in = StateIndex::open_at(Path::new(":memory:"), "")
                .map_err(|e| Failure::usage(e.to_string()))?;
            (stand_in, true)
        }
        Err(e) => return Err(Failure::usage(e.to_string())),
    };
    Ok(Setup {
        config,
        filter,
        remote,
        state,
        index_read_only,
        warnings,
    })
}

pub async fn run(config_path: Option<PathBuf>, config: Config) -> Result<ExitCode, Failure> {
    let started = Instant::now();
    // Signals first: SIGTERM must work while waiting for the lock.
    let mut signals = signal_hook_tokio::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))?;
    // With encryption on, the key first: a missing or wrong passphrase writes nothing, not
    // even the lock.
    let unlocked = if config.encryption.enabled {
        let remote =
            crate::session::open_remote(&config).map_err(|e| Failure::usage(e.to_string()))?;
        crate::session::ready(remote.as_ref(), true).await?;
        Some(remote)
    } else {
        None
    };
    ensure_default_root(&config)?;
    let socket = control::socket_path(&config);
    let Some(lock) = wait_for_lock(config.state_dir(), &socket, &mut signals).await? else {
        tracing::info!("stopped while waiting for the instance lock");
        signals.handle().close();
        return Ok(exit::OK);
    };
    let setup = build_setup(config, unlocked)?;
    crate::session::ready(setup.remote.as_ref(), true).await?;
    let alert_config = setup.config.alert.clone();
    if let crate::config::RemoteConfig::Directory {
        path,
        embedded_default: true,
    } = &setup.config.remote
    {
        tracing::info!(
            mirror = %path.display(),
            "no remote configured: mirroring into the local directory (set remote.url to push to Azure)"
        );
    }
    let listener = control::bind(&socket)
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sink = Arc::new(EventSink::default());
    let root = setup.config.root.clone();
    let mut current_watch =
        watch::start(&root, &setup.filter, sink.clone()).map_err(Failure::usage)?;
    if let Some(limited) = &current_watch.limited {
        tracing::warn!("{limited}");
    }

    let (worker_tx, worker_rx) = mpsc::channel::<WorkerCmd>(64);
    let (status_tx, status_rx) = tokio::sync::watch::channel(worker::WorkerStatus::default());
    let (queue_status_tx, queue_status_rx) = tokio::sync::watch::channel(QueueStatus::default());
    let (queue_settings_tx, queue_settings_rx) = mpsc::channel::<QueueSettings>(4);
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let reload_self = reload_tx.clone();

    let queue_settings = QueueSettings {
        debounce: setup.config.sync.debounce,
        max_delay: setup.config.sync.max_delay,
        filter: setup.filter.clone(),
    };
    let watch_limited = current_watch.limited.clone();
    let worker = Worker::new(setup, hostname(), status_tx, cancel.clone());
    if watch_limited.is_some() {
        worker_tx
            .send(WorkerCmd::WatchLimited(watch_limited))
            .await
            .ok();
    }
    // What changed while the daemon was down.
    worker_tx
        .send(WorkerCmd::Rescan(RescanReason::Startup))
        .await
        .ok();
    let mut worker_task = tracker.spawn(worker.run(worker_rx));
    tracker.spawn(queue_task::run(
        sink.clone(),
        queue_settings,
        queue_settings_rx,
        worker_tx.clone(),
        queue_status_tx,
        status_rx.clone(),
        cancel.clone(),
    ));
    let sources = status::Sources {
        worker: status_rx,
        queue: queue_status_rx,
        watch_health: sink.clone(),
        started,
        socket: socket.clone(),
    };
    let (alert_tx, alert_rx) = tokio::sync::watch::channel(alert_config);
    tracker.spawn(alert::run(sources.clone(), alert_rx, cancel.clone()));
    let ctx = Arc::new(control::ControlContext {
        worker: worker_tx.clone(),
        status: sources,
        reload: reload_tx,
        cancel: cancel.clone(),
    });
    tracker.spawn(control::serve(listener, ctx, tracker.clone()));

    sd_notify::ready("started; first pass running");
    tracing::info!(root = %root.display(), socket = %socket.display(), pid = std::process::id(), "devlogd running");

    let mut died = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ended = &mut worker_task => {
                if !cancel.is_cancelled() {
                    let failure = worker_ended(ended);
                    tracing::error!("{failure}");
                    died = Some(failure);
                    cancel.cancel();
                }
                break;
            }
            signal = signals.next() => match signal {
                // SIGHUP is a reload with nobody waiting for the answer: one path for both.
                Some(signal_hook::consts::SIGHUP) => {
                    let (reply, _) = oneshot::channel();
                    let _ = reload_self.try_send(ReloadRequest { reply });
                }
                Some(_) | None => {
                    tracing::info!("stopping");
                    cancel.cancel();
                }
            },
            Some(request) = reload_rx.recv() => {
                let result = reload(&config_path, &worker_tx, &queue_settings_tx, &alert_tx, &sink, &mut current_watch, &tracker).await;
                if let Err(e) = &result {
                    tracing::error!("reload refused, the old configuration stays: {e}");
                }
                let _ = request.reply.send(result);
            }
        }
    }

    sd_notify::stopping();
    drop(current_watch);
    tracker.close();
    if tokio::time::timeout(STOP_GRACE + Duration::from_secs(2), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "uploads still running after {} s; stopping anyway (nothing half-recorded)",
            STOP_GRACE.as_secs()
        );
    }
    let _ = std::fs::remove_file(&socket);
    signals.handle().close();
    drop(lock);
    tracing::info!("stopped");
    match died {
        Some(failure) => Err(failure),
        None => Ok(exit::OK),
    }
}

/// The worker ended while the daemon was not stopping (a panic): nothing would be pushed
/// again, so the process ends with a code the service manager restarts it on (never 2,
/// which means a configuration to fix).
fn worker_ended(ended: Result<(), tokio::task::JoinError>) -> Failure {
    let why = match ended {
        Ok(()) => "it returned".to_string(),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            format!("it panicked: {}", crate::redact::printable(&text))
        }
        Err(e) => e.to_string(),
    };
    Failure::new(
        exit::FILES_FAILED,
        format!(
            "the sync worker stopped ({why}); exiting so the service manager starts devlogd again"
        ),
    )
}

/// The instance lock. Held by a one-shot `devlogd push`: wait for it (a daemon that exits
/// here is never restarted by the service manager), answering SIGTERM/SIGINT meanwhile
/// (`Ok(None)`). Held by another daemon: refuse, as two daemons must not share the index.
async fn wait_for_lock(
    state_dir: &Path,
    socket: &Path,
    signals: &mut signal_hook_tokio::Signals,
) -> Result<Option<lock::InstanceLock>, Failure> {
    let mut pause = Duration::from_millis(50);
    let mut announced = false;
    loop {
        let holder = match lock::try_acquire(state_dir, lock::Role::Daemon) {
            Ok(Ok(lock)) => return Ok(Some(lock)),
            Ok(Err(holder)) => holder,
            Err(e) => return Err(Failure::usage(e)),
        };
        // A daemon says so in the lock file; one that predates that answers on the socket.
        if holder.daemon || std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(Failure::usage(holder.already_running()));
        }
        if !announced {
            let what = match &holder.pid {
                Some(pid) => format!("waiting for the running push (pid {pid}) to finish"),
                None => "waiting for the running push to finish".to_string(),
            };
            tracing::info!(lock = %holder.path.display(), "{what}");
            // Started, as far as the service manager goes: it must not time the start out.
            sd_notify::ready(&what);
            announced = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            signal = signals.next() => match signal {
                Some(signal_hook::consts::SIGHUP) => {}
                Some(_) | None => return Ok(None),
            },
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The built-in default root (`~/.devlog`) is created on first run, so the daemon works out
/// of the box; a configured root that is missing stays an error (it may be a typo).
fn ensure_default_root(config: &Config) -> Result<(), Failure> {
    let default_root = config.dirs.home.join(".devlog");
    if config.root == default_root && !config.root.exists() {
        crate::fsutil::private_dir_all(&config.root).map_err(|e| {
            Failure::usage(format!(
                "cannot create the journal root {}: {e}",
                config.root.display()
            ))
        })?;
        tracing::info!(root = %config.root.display(), "created the journal directory");
    }
    Ok(())
}

/// Validate the new configuration completely before anything switches to it.
async fn reload(
    config_path: &Option<PathBuf>,
    worker_tx: &mpsc::Sender<WorkerCmd>,
    queue_tx: &mpsc::Sender<QueueSettings>,
    alert_tx: &tokio::sync::watch::Sender<crate::config::AlertConfig>,
    sink: &Arc<EventSink>,
    current_watch: &mut watch::Watch,
    tracker: &TaskTracker,
) -> Result<(), Failure> {
    let config = Config::load(config_path.as_deref()).map_err(|e| Failure::usage(e.to_string()))?;
    let setup = build_setup(config, None)?;
    crate::session::ready(setup.remote.as_ref(), true).await?;
    alert_tx.send_replace(setup.config.alert.clone());
    let root = setup.config.root.clone();
    let new_watch = watch::start(&root, &setup.filter, sink.clone()).map_err(Failure::usage)?;
    let limited = new_watch.limited.clone();
    *current_watch = new_watch;
    let settings = QueueSettings {
        debounce: setup.config.sync.debounce,
        max_delay: setup.config.sync.max_delay,
        filter: setup.filter.clone(),
    };
    // Hand over without waiting: the worker applies it after a push in progress, and the
    // supervisor must stay free to handle signals meanwhile.
    let (queue_tx, worker_tx) = (queue_tx.clone(), worker_tx.clone());
    tracker.spawn(async move {
        let _ = queue_tx.send(settings).await;
        let _ = worker_tx
            .send(WorkerCmd::Reload {
                setup: Box::new(setup),
                watch_limited: limited,
            })
            .await;
    });
    tracing::info!(root = %root.display(), "configuration reloaded");
    Ok(())
}

#[cfg(test)]
mod supervision_tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_panic_ends_the_daemon_with_a_code_the_service_manager_restarts() {
        let task = tokio::spawn(async { panic!("keep_versions_days overflowed") });
        let failure = worker_ended(task.await);
        assert_ne!(failure.code.code(), 0);
        assert_ne!(failure.code, exit::USAGE, "2 is never restarted");
        assert!(
            failure.message.contains("keep_versions_days overflowed"),
            "{failure}"
        );
    }
}
