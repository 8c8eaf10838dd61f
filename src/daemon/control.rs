//! The control socket: a Unix socket in a 0700 directory, mode 0600, that answers only to
//! our own uid. One task per connection (mini-redis style); each reads newline-delimited
//! JSON requests with a size limit and an idle timeout, so a silent or abusive client costs
//! one task and never blocks the daemon. Requests become [`WorkerCmd`]s. A `pause_lease`
//! connection (restore) has no idle timeout: the daemon stays paused until it closes.

use super::ReloadRequest;
use super::worker::WorkerCmd;
use crate::exit;
use crate::protocol::{self, Command, Line, MAX_REQUEST_BYTES, Reply};
use crate::push::PushFlags;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The answer to a `ctl push` that arrives while a push runs.
pub const JOINED: &str = "joined: a push is running; this one is queued behind it and runs when it finishes (identical requests run once). Follow it with devlogd ctl status";

/// How long a `ctl push` waits for a running push to end before it joins it instead.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// [`JOIN_WAIT`], or `DEVLOGD_JOIN_WAIT_MS` (for tests that need a running push to be
/// joined whatever the speed of the machine).
fn join_wait() -> Duration {
    std::env::var("DEVLOGD_JOIN_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(JOIN_WAIT, Duration::from_millis)
}

/// How long a connection may stay silent before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the socket lives: `$XDG_RUNTIME_DIR/devlog/` or the state directory.
pub fn socket_path(config: &crate::config::Config) -> PathBuf {
    socket_path_in(&config.dirs)
}

/// [`socket_path`] from the environment's directories alone: `ctl` finds the daemon even
/// when the config file does not parse.
pub fn socket_path_in(dirs: &crate::config::Dirs) -> PathBuf {
    dirs.runtime_dir
        .clone()
        .unwrap_or_else(|| dirs.state_dir.clone())
        .join("devlogd.sock")
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create {}: {source}", .path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot chmod {mode:o} {}: {source}", .path.display())]
    Chmod {
        path: PathBuf,
        mode: u32,
        source: std::io::Error,
    },
    #[error("another devlogd is already listening on {}", .0.display())]
    Listening(PathBuf),
    #[error("cannot remove stale {}: {source}", .path.display())]
    RemoveStale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind {}: {source}", .path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Bind, replacing a stale socket file but never a live daemon's.
pub async fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let at = |path: &Path| path.to_path_buf();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| BindError::Create {
        path: at(dir),
        source,
    })?;
    set_mode(dir, 0o700)?;
    if path.exists() {
        match UnixStream::connect(path).await {
            Ok(_) => return Err(BindError::Listening(at(path))),
            Err(_) => {
                tracing::info!(socket = %path.display(), "replacing a stale socket file");
                std::fs::remove_file(path).map_err(|source| BindError::RemoveStale {
                    path: at(path),
                    source,
                })?;
            }
        }
    }
    let listener = UnixListener::bind(path).map_err(|source| BindError::Bind {
        path: at(path),
        source,
    })?;
    set_mode(path, 0o600)?;
    Ok(listener)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BindError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        BindError::Chmod {
            path: path.to_path_buf(),
            mode,
            source,
        }
    })
}

/// What a connection needs to answer.
pub struct ControlContext {
    pub worker: mpsc::Sender<WorkerCmd>,
    /// What `status` answers (the worker's part also says whether a push runs).
    pub status: super::status::Sources,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub cancel: CancellationToken,
}

pub async fn serve(listener: UnixListener, ctx: Arc<ControlContext>, tracker: TaskTracker) {
    let uid = rustix::process::getuid().as_raw();
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tracker.spawn(async move {
                        // A connection never holds up shutdown.
                        tokio::select! {
                            _ = ctx.cancel.cancelled() => {}
                            result = connection(stream, uid, &ctx) => {
                                if let Err(e) = result {
                                    tracing::debug!(error = %e, "control connection ended");
                                }
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of descriptors and the like: do not spin on a failing accept.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn connection(stream: UnixStream, uid: u32, ctx: &ControlContext) -> std::io::Result<()> {
    let peer = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    if peer.uid() != uid {
        tracing::warn!(
            peer_uid = peer.uid(),
            "refused a control connection from another user"
        );
        send(
            &mut write,
            &Line::Reply(Reply::error(
                exit::USAGE,
                "permission denied: not the daemon's user",
            )),
        )
        .await?;
        return Ok(());
    }
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let limit = (MAX_REQUEST_BYTES + 1) as u64;
        let read = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut reader).take(limit).read_until(b'\n', &mut buf),
        )
        .await;
        let n = match read {
            Err(_) => {
                let reply = Reply::error(exit::USAGE, "timed out waiting for a request");
                send(&mut write, &Line::Reply(reply)).await?;
                return Ok(());
            }
            Ok(r) => r?,
        };
        if n == 0 {
            return Ok(()); // the client closed
        }
        if buf.len() > MAX_REQUEST_BYTES {
            let reply = Reply::error(
                exit::USAGE,
                format!("request too large (over {} KiB)", MAX_REQUEST_BYTES / 1024),
            );
            send(&mut write, &Line::Reply(reply)).await?;
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match protocol::parse_request(line) {
            Err(e) => {
                send(
                    &mut write,
                    &Line::Reply(Reply::error(exit::USAGE, e.to_string())),
                )
                .await?
            }
            Ok(request) if request.cmd == Command::PauseLease => {
                return lease(ctx, reader, &mut write).await;
            }
            Ok(request) => respond(request.cmd, ctx, &mut write).await?,
        }
    }
}

/// `pause_lease`: paused until this connection closes, with no idle timeout (a restore
/// takes as long as it takes); whatever else the client sends is ignored.
async fn lease(
    ctx: &ControlContext,
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    if ctx.worker.send(WorkerCmd::Pause).await.is_err() {
        let reply = Reply::error(exit::NO_DAEMON, "the daemon is shutting down");
        return send(write, &Line::Reply(reply)).await;
    }
    let granted = send(
        write,
        &Line::Reply(Reply::ok("paused until this connection closes")),
    )
    .await;
    if granted.is_ok() {
        let mut sink = [0u8; 512];
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    }
    tracing::info!("the pausing client went away: resuming");
    let _ = ctx.worker.send(WorkerCmd::Resume).await;
    // A client that ended the lease itself (a half-close) waits for this before it exits.
    let _ = send(write, &Line::Reply(Reply::ok("resumed"))).await;
    granted
}

async fn respond(
    cmd: Command,
    ctx: &ControlContext,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    let gone = || Reply::error(exit::NO_DAEMON, "the daemon is shutting down");
    let reply = match cmd {
        Command::Status { .. } => {
            let mut reply = Reply::ok("status");
            reply.status = Some(Box::new(ctx.status.project()));
            reply
        }
        // Taken by `connection`, which holds the lease.
        Command::PauseLease => Reply::error(exit::USAGE, "a lease is held by its connection"),
        Command::Pause | Command::Resume => {
            let (worker_cmd, word) = if cmd == Command::Pause {
                (WorkerCmd::Pause, "paused")
            } else {
                (WorkerCmd::Resume, "resumed")
            };
            match ctx.worker.send(worker_cmd).await {
                Ok(()) => Reply::ok(word),
                Err(_) => gone(),
            }
        }
        Command::Stop => {
            // Answer first: cancelling ends this connection's task too.
            send(write, &Line::Reply(Reply::ok("stopping"))).await?;
            ctx.cancel.cancel();
            return Ok(());
        }
        Command::Reload => {
            let (tx, rx) = oneshot::channel();
            if ctx.reload.send(ReloadRequest { reply: tx }).await.is_err() {
                gone()
            } else {
                match rx.await {
                    Ok(Ok(())) => Reply::ok("configuration reloaded"),
                    Ok(Err(e)) => Reply::error(
                        exit::USAGE,
                        format!("reload refused, the old configuration stays: {e}"),
                    ),
                    Err(_) => gone(),
                }
            }
        }
        Command::Pull { .. } => {
            let (tx, rx) = oneshot::channel();
            if ctx
                .worker
                .send(WorkerCmd::Pull { reply: Some(tx) })
                .await
                .is_err()
            {
                gone()
            } else {
                match rx.await {
                    Ok(Ok(report)) => {
                        let code = if report.is_clean() {
                            exit::OK
                        } else {
                            exit::FILES_FAILED
                        };
                        Reply::with_pull(code, Some(report), None)
                    }
                    Ok(Err(super::worker::PushFailure { code, message, .. })) => {
                        Reply::with_pull(code, None, Some(message))
                    }
                    Err(_) => Reply::error(
                        exit::NO_DAEMON,
                        "the daemon stopped before the pull finished",
                    ),
                }
            }
        }
        Command::Push {
            flags: request,
            wait,
            ..
        } => {
            // A push already running: waiting behind it could take as long as it does (an
            // hour against a hung remote). Unless it ends within a moment, join instead: the
            // request is queued behind the running push (identical requests waiting together
            // run once) and the answer comes now.
            let running = wait && !running_push_ends_soon(ctx).await;
            if !wait || running {
                let cmd = WorkerCmd::Push {
                    request,
                    progress: None,
                    reply: None,
                };
                match ctx.worker.send(cmd).await {
                    Ok(()) if running => Reply::ok(JOINED),
                    Ok(()) => Reply::ok("queued"),
                    Err(_) => gone(),
                }
            } else {
                return push_and_stream(request, ctx, write).await;
            }
        }
    };
    send(write, &Line::Reply(reply)).await
}

/// No push running, or the one running ended within [`JOIN_WAIT`].
async fn running_push_ends_soon(ctx: &ControlContext) -> bool {
    use super::worker::State;
    let mut status = ctx.status.worker.clone();
    let pushes = {
        let s = status.borrow_and_update();
        if s.state != State::Pushing {
            return true;
        }
        s.pushes
    };
    let ended = status.wait_for(|s| s.pushes > pushes || s.state != State::Pushing);
    matches!(tokio::time::timeout(join_wait(), ended).await, Ok(Ok(_)))
}

async fn push_and_stream(
    request: PushFlags,
    ctx: &ControlContext,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let (reply_tx, mut reply_rx) = oneshot::channel();
    let cmd = WorkerCmd::Push {
        request,
        progress: Some(progress_tx),
        reply: Some(reply_tx),
    };
    if ctx.worker.send(cmd).await.is_err() {
        return send(
            write,
            &Line::Reply(Reply::error(exit::NO_DAEMON, "the daemon is shutting down")),
        )
        .await;
    }
    loop {
        tokio::select! {
            Some(event) = progress_rx.recv() => {
                send(write, &Line::Event(event)).await?;
            }
            result = &mut reply_rx => {
                // Flush progress that raced the reply.
                while let Ok(event) = progress_rx.try_recv() {
                    send(write, &Line::Event(event)).await?;
                }
                let reply = match result {
                    Ok(Ok(report)) => Reply::with_report(report.exit_code(), &report, None),
                    Ok(Err(super::worker::PushFailure { code, message, report })) => match report {
                        Some(r) => Reply::with_report(code, &r, Some(message)),
                        None => Reply::error(code, message),
                    },
                    Err(_) => Reply::error(exit::NO_DAEMON, "the daemon stopped before the push finished"),
                };
                return send(write, &Line::Reply(reply)).await;
            }
        }
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, line: &Line) -> std::io::Result<()> {
    let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    text = crate::redact::scrub(&text).into_owned();
    text.push('\n');
    write.write_all(text.as_bytes()).await
}
