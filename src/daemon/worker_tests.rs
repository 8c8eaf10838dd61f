//! The worker in process: the in-memory remote (with its fault and gate hooks), a real
//! journal directory and state index, and tokio's paused clock — no emulator, no real
//! waiting, no timing luck.

use super::worker::{Setup, State, Worker, WorkerCmd, WorkerStatus};
use crate::config::{Config, Dirs, parse_raw};
use crate::filter::Filter;
use crate::push::PushFlags;
use crate::remote::memory::MemoryRemote;
use crate::remote::{Remote, RemoteError};
use crate::state::StateIndex;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

struct World {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    remote: Arc<MemoryRemote>,
    tx: mpsc::Sender<WorkerCmd>,
    status: watch::Receiver<WorkerStatus>,
    cancel: CancellationToken,
}

impl World {
    fn new() -> World {
        World::with_config("")
    }

    /// A world whose config.toml also holds `extra`.
    fn with_config(extra: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("journal");
        std::fs::create_dir_all(&root).unwrap();
        let dirs = Dirs {
            home: dir.path().to_path_buf(),
            config_dir: dir.path().join("config"),
            state_dir: dir.path().join("state"),
            data_dir: dir.path().join("data"),
            runtime_dir: None,
        };
        let file = dir.path().join("config.toml");
        let text = format!("root = \"{}\"\n{extra}", root.display());
        let raw = parse_raw(&file, &text).unwrap();
        let config = Config::from_raw(raw, file, true, dirs).unwrap();
        let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
        let state = StateIndex::open(&dir.path().join("state"), "memory").unwrap();
        let remote = Arc::new(MemoryRemote::new());
        let setup = Setup {
            config,
            filter,
            remote: remote.clone() as Arc<dyn Remote>,
            state,
            index_read_only: false,
            warnings: Vec::new(),
        };
        let (status_tx, status) = watch::channel(WorkerStatus::default());
        let cancel = CancellationToken::new();
        let worker = Worker::new(setup, "host".into(), status_tx, cancel.clone());
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(worker.run(rx));
        World {
            _dir: dir,
            root,
            remote,
            tx,
            status,
            cancel,
        }
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    async fn batch(&self, rels: &[&str]) {
        let paths = rels.iter().map(|s| s.to_string()).collect();
        self.tx.send(WorkerCmd::Batch(paths)).await.unwrap();
    }

    /// Ask for a push; the reply arrives on the receiver.
    async fn push(
        &self,
    ) -> oneshot::Receiver<Result<crate::push::PushReport, super::worker::PushFailure>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WorkerCmd::Push {
                request: PushFlags::default(),
                progress: None,
                reply: Some(reply),
            })
            .await
            .unwrap();
        rx
    }

    /// Wait (in paused time) until the status satisfies `f`.
    async fn until(&self, what: &str, f: impl Fn(&WorkerStatus) -> bool) -> WorkerStatus {
        let mut rx = self.status.clone();
        let seen = tokio::time::timeout(Duration::from_secs(3600), rx.wait_for(|s| f(s)))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|s| s.clone());
        seen.unwrap_or_else(|| panic!("never saw: {what}; status {:?}", *self.status.borrow()))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn exists(root: &Path, rel: &str) -> bool {
    root.join(rel).exists()
}

#[tokio::test(start_paused = true)]
async fn identical_pushes_waiting_behind_a_running_push_run_once() {
    let w = World::new();
    w.write("a.md", "a");
    // The service stalls: the first push hangs at the gate.
    let gate = w.remote.close_gate().await;
    let first = w.push().await;
    w.until("the first push running", |s| s.state == State::Pushing)
        .await;
    let second = w.push().await;
    let third = w.push().await;
    drop(gate);
    for reply in [first, second, third] {
        let report = reply.await.unwrap().unwrap();
        assert!(report.failed.is_empty(), "{report:?}");
    }
    let s = w.until("idle", |s| s.state == State::Idle).await;
    assert_eq!(s.pushes, 2, "the two waiting identical pushes ran as one");
    assert_eq!(w.remote.get("a.md").as_deref(), Some(&b"a"[..]));
    assert!(exists(&w.root, "a.md"));
}

#[tokio::test(start_paused = true)]
async fn paused_it_pushes_nothing_and_resumed_it_pushes_what_changed() {
    let w = World::new();
    w.tx.send(WorkerCmd::Pause).await.unwrap();
    w.until("paused", |s| s.state == State::Paused).await;
    w.write("n.md", "while paused");
    w.batch(&["n.md"]).await;
    let s = w.until("the path waiting", |s| s.waiting_paths == 1).await;
    assert_eq!(s.state, State::Paused);
    assert_eq!(w.remote.writes(), 0);
    w.tx.send(WorkerCmd::Resume).await.unwrap();
    w.until("pushed and idle", |s| {
        s.state == State::Idle && s.waiting_paths == 0 && s.files_uploaded == 1
    })
    .await;
    assert_eq!(w.remote.get("n.md").as_deref(), Some(&b"while paused"[..]));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_remote_is_retried_with_back_off_without_spinning() {
    let w = World::new();
    w.remote
        .fail_next(100_000, unreachable("connection refused"));
    w.write("n.md", "offline");
    w.batch(&["n.md"]).await;
    w.until("offline", |s| s.state == State::Offline).await;
    // Ten minutes of outage: the back-off grows (1 s, 2 s, … 5 min), so a handful of
    // attempts of five tries each, not a loop.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let requests = w.remote.requests();
    assert!(
        (5..=60).contains(&requests),
        "{requests} requests in ten minutes of outage"
    );
    let s = w.status.borrow().clone();
    assert_eq!(s.state, State::Offline, "{s:?}");
    assert_eq!(s.waiting_paths, 1, "the path is kept: {s:?}");
    // The service is back: the next retry pushes the path.
    w.remote.clear_faults();
    w.until("pushed after the outage", |s| {
        s.state == State::Idle && s.files_uploaded == 1
    })
    .await;
    assert_eq!(w.remote.get("n.md").as_deref(), Some(&b"offline"[..]));
}

#[tokio::test(start_paused = true)]
async fn a_ctl_push_while_backing_off_runs_at_once() {
    let w = World::new();
    // The first attempt is refused at once; the worker then backs off (a second or more).
    w.remote.fail_next(1, refused("refused"));
    w.write("n.md", "x");
    let asked = tokio::time::Instant::now();
    w.batch(&["n.md"]).await;
    let report = w.push().await.await.unwrap().unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "the explicit push waited for the back-off: {:?}",
        asked.elapsed()
    );
    assert_eq!(w.remote.get("n.md").as_deref(), Some(&b"x"[..]));
    let s = w.until("idle", |s| s.state == State::Idle).await;
    assert_eq!(s.pushes, 2, "{s:?}");
    assert!(s.last_error.is_none(), "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_file_that_fails_is_kept_shown_and_retried_never_counted_as_a_success() {
    let w = World::new();
    w.remote.fail_next(1, permanent("refused this one"));
    w.write("n.md", "x");
    w.batch(&["n.md"]).await;
    let s = w
        .until("retrying", |s| {
            s.state == State::Retrying && s.failed_paths == 1
        })
        .await;
    assert_eq!(s.failed_sample, vec!["n.md".to_string()], "{s:?}");
    assert!(s.failed_error.is_some(), "{s:?}");
    assert!(s.last_success_unix.is_none(), "{s:?}");
    assert!(s.last_success_at.is_none(), "{s:?}");
    assert!(s.offline_since_unix.is_none(), "not an outage: {s:?}");
    // Retried with back-off, by itself.
    let s = w
        .until("pushed and idle", |s| {
            s.state == State::Idle && s.files_uploaded == 1
        })
        .await;
    assert_eq!(s.failed_paths, 0, "{s:?}");
    assert!(s.failed_sample.is_empty(), "{s:?}");
    assert!(s.last_success_at.is_some(), "{s:?}");
    assert_eq!(w.remote.get("n.md").as_deref(), Some(&b"x"[..]));
}

#[tokio::test(start_paused = true)]
async fn a_failed_file_backing_off_does_not_hold_back_new_changes() {
    let w = World::new();
    w.remote.fail_next(1, permanent("refused this one"));
    w.write("n.md", "x");
    w.batch(&["n.md"]).await;
    w.until("retrying", |s| {
        s.state == State::Retrying && s.failed_paths == 1
    })
    .await;
    // A new change goes at once, not after the failed file's back-off.
    w.write("m.md", "m");
    w.batch(&["m.md"]).await;
    let s = w
        .until("m.md pushed, n.md still waiting", |s| {
            s.files_uploaded == 1 && s.failed_paths == 1 && s.state == State::Retrying
        })
        .await;
    assert!(s.next_retry.is_some(), "{s:?}");
    assert_eq!(w.remote.get("m.md").as_deref(), Some(&b"m"[..]));
    assert!(
        s.last_success_unix.is_none(),
        "n.md is not on the remote: {s:?}"
    );
    w.until("both pushed", |s| {
        s.state == State::Idle && s.files_uploaded == 2 && s.failed_paths == 0
    })
    .await;
}

/// A rescan with nothing to send asks the remote nothing: that is not a success while the
/// remote has never answered (the status once said "last success 9 s ago" = the uptime).
#[tokio::test(start_paused = true)]
async fn a_push_that_sent_nothing_is_no_success_until_the_remote_answered() {
    let w = World::new();
    w.remote.fail_next(1, unreachable("connection refused"));
    w.tx.send(WorkerCmd::Rescan(super::watch::RescanReason::Scheduled))
        .await
        .unwrap();
    let s = w.until("offline", |s| s.state == State::Offline).await;
    assert!(s.last_success_unix.is_none(), "{s:?}");
    assert!(s.last_success_at.is_none(), "{s:?}");
    assert!(!s.remote_reached, "{s:?}");
    assert_eq!(
        s.remote_problem,
        Some(crate::protocol::RemoteProblem::Unreachable),
        "{s:?}"
    );
    // The retry reaches it: now it is a success.
    let s = w
        .until("reached and idle", |s| {
            s.state == State::Idle && s.remote_reached
        })
        .await;
    assert!(s.last_success_at.is_some(), "{s:?}");
    assert_eq!(s.remote_problem, None, "{s:?}");
}

/// Refused credentials are told apart from an unreachable remote.
#[tokio::test(start_paused = true)]
async fn refused_credentials_are_a_problem_of_their_own() {
    let w = World::new();
    w.remote
        .fail_next(1, refused("HTTP 403 AuthenticationFailed"));
    w.tx.send(WorkerCmd::Rescan(super::watch::RescanReason::Scheduled))
        .await
        .unwrap();
    let s = w.until("refused", |s| s.remote_problem.is_some()).await;
    assert_eq!(
        s.remote_problem,
        Some(crate::protocol::RemoteProblem::CredentialsRefused),
        "{s:?}"
    );
    assert!(s.last_success_at.is_none(), "{s:?}");
}

/// A refusal of the credentials, as the remote reports it.
fn refused(message: &str) -> RemoteError {
    RemoteError::Auth {
        message: message.into(),
    }
}

/// A failure of one file that retrying may not fix.
fn permanent(message: &str) -> RemoteError {
    RemoteError::Permanent {
        message: message.into(),
    }
}

/// No answer from the remote.
fn unreachable(message: &str) -> RemoteError {
    RemoteError::Unreachable {
        message: message.into(),
    }
}

/// Ask for a pull; the reply arrives on the receiver.
async fn pull(w: &World) -> Result<crate::pull::PullReport, super::worker::PushFailure> {
    let (reply, rx) = oneshot::channel();
    w.tx.send(WorkerCmd::Pull { reply: Some(reply) })
        .await
        .unwrap();
    rx.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_way_it_pulls_at_start_and_every_interval_and_pushes_nothing_back() {
    let w = World::with_config("[sync]\nmode = \"two-way\"\npull_interval_s = 30\n");
    w.remote.write_as_other("from-a.md", b"written on A");
    w.until("the start-up pull", |s| {
        s.last_pull.as_ref().is_some_and(|p| p.downloaded == 1)
    })
    .await;
    assert_eq!(
        std::fs::read(w.root.join("from-a.md")).unwrap(),
        b"written on A"
    );
    // A change there comes down at the next interval, not before.
    w.remote.write_as_other("later.md", b"later on A");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!exists(&w.root, "later.md"), "pulled before the interval");
    let root = w.root.clone();
    let s = w
        .until("the next pull", |s| {
            exists(&root, "later.md") && s.state == State::Idle
        })
        .await;
    assert_eq!(s.mode, crate::config::SyncMode::TwoWay);
    // Nothing that came down went back up: every write so far was the other writer's.
    assert_eq!(w.remote.writes(), 2, "pushed back what it pulled");
    let report = pull(&w).await.unwrap();
    assert!(
        report.downloaded.is_empty() && report.to_push == 0,
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn in_backup_mode_a_pull_is_refused_with_the_setting_to_change() {
    let w = World::new();
    w.remote.write_as_other("from-a.md", b"written on A");
    let e = pull(&w).await.unwrap_err();
    assert!(
        e.message.contains("sync.mode = \"two-way\""),
        "{}",
        e.message
    );
    assert!(!exists(&w.root, "from-a.md"));
    assert!(w.status.borrow().last_pull.is_none());
}
