//! A running `devlogd run` for tests: started in a [`TestEnv`], ready once its control
//! socket answers, killed on drop. Also: running devlogd as an unprivileged user (the tests
//! run as root, who can read anything), the directory remote's mirror, and status.

use super::machine;
pub use super::status::{settled, settled_as, status, status_as, verdict};
use super::{RunOutput, TestEnv, poll_until, wait_for};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The uid/gid unprivileged daemons run as (`nobody` on most systems).
pub const NOBODY: u32 = 65534;

/// A running `devlogd run`, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    /// Keeps machine-changing tests out while this daemon runs (dropped after the kill).
    _machine: machine::Shared,
}

impl Daemon {
    pub fn start(env: &TestEnv) -> Daemon {
        Self::start_with(env, &[])
    }

    pub fn start_with(env: &TestEnv, vars: &[(&str, &str)]) -> Daemon {
        Self::start_full(env, vars, None)
    }

    /// Started as `uid` (gid the same, no supplementary groups): give it the env first
    /// with [`give_env_to`].
    pub fn start_as(env: &TestEnv, uid: u32) -> Daemon {
        Self::start_full(env, &[], Some(uid))
    }

    fn start_full(env: &TestEnv, vars: &[(&str, &str)], uid: Option<u32>) -> Daemon {
        let mut d = Self::spawn_full(env, vars, uid);
        wait_for(
            Duration::from_secs(30),
            "the daemon's control socket",
            || {
                if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("devlogd run exited early ({status}):\n{}", d.log_text());
                }
                let out = run_as(env, uid, &["ctl", "status", "--json"]);
                out.success().then_some(())
            },
        );
        d
    }

    /// `devlogd run` without waiting for it to be ready.
    pub fn spawn(env: &TestEnv) -> Daemon {
        Self::spawn_full(env, &[], None)
    }

    fn spawn_full(env: &TestEnv, vars: &[(&str, &str)], uid: Option<u32>) -> Daemon {
        let machine = machine::shared();
        let log = env.root().join(format!("daemon-{}.log", next_number()));
        let file = std::fs::File::create(&log).unwrap();
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&log, Some(uid), Some(uid)).unwrap();
        }
        let mut cmd = command_as(env, uid);
        cmd.arg("run")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn devlogd run");
        Daemon {
            child: Some(child),
            log,
            _machine: machine,
        }
    }

    /// Whether the process has exited (its status), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        let status = wait_for(timeout, "the daemon to exit", || child.try_wait().unwrap());
        self.child = None;
        status.code()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// SIGSTOP, returning once every thread is stopped: kill(2) only queues the signal,
    /// and a thread woken meanwhile could still read what the caller does next.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.pid());
        let stopped = |stat: String| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string))
                .is_some_and(|state| state == "T" || state == "t")
        };
        crate::common::wait_for(
            std::time::Duration::from_secs(30),
            "the daemon stopped",
            || {
                let all = std::fs::read_dir(&tasks).ok()?.flatten().all(|task| {
                    std::fs::read_to_string(task.path().join("stat")).is_ok_and(stopped)
                });
                all.then_some(())
            },
        );
    }

    /// user+sys CPU seconds so far, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks as f64 / hz
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `devlogd` in the env's clean environment, as `uid` (gid the same; std drops the
/// supplementary groups when root sets a uid).
pub fn command_as(env: &TestEnv, uid: Option<u32>) -> Command {
    let mut cmd = env.devlogd();
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd
}

/// Runs `devlogd ARGS` as `uid` to completion (at most 120 s).
pub fn run_as(env: &TestEnv, uid: Option<u32>, args: &[&str]) -> RunOutput {
    let Some(uid) = uid else {
        return env.run(args);
    };
    let mut child = command_as(env, Some(uid))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning devlogd {args:?} as {uid}: {e}"));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = poll_until(Duration::from_secs(120), || child.try_wait().unwrap());
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("devlogd {args:?} as {uid} still running after 120 s")
    });
    RunOutput {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Hands the whole test env (HOME, XDG dirs, journal, logs) to `uid`, so a daemon
/// running as `uid` owns everything it needs.
pub fn give_env_to(env: &TestEnv, uid: u32) {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(env.root())
        .output()
        .expect("running chown");
    assert!(out.status.success(), "chown: {out:?}");
}

/// A daemon started and through its start-up pass (within `deadline`).
pub fn running(env: &TestEnv, deadline: std::time::Duration) -> Daemon {
    let daemon = Daemon::start(env);
    super::wait_for(deadline, "the start-up pass", || settled(env).then_some(()));
    daemon
}

/// The built-in directory remote (no remote configured): `$XDG_DATA_HOME/devlog/mirror`.
pub fn mirror(env: &TestEnv) -> PathBuf {
    env.data_home().join("devlog").join("mirror")
}

/// The content of `rel` on the directory remote, if it is there.
pub fn mirrored(env: &TestEnv, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(mirror(env).join(rel)).ok()
}

/// The instance lock `devlogd run` and a one-shot `devlogd push` take.
pub fn instance_lock_path(env: &TestEnv) -> PathBuf {
    env.state_home().join("devlog").join("devlogd.lock")
}

/// An exclusive `flock` on `path` (created if needed) held until dropped, as another
/// process (a one-shot push, a remote writer) holds it.
pub struct HeldLock {
    _file: std::fs::File,
}

impl HeldLock {
    pub fn take(path: &Path, content: &str) -> HeldLock {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(rc, 0, "taking the lock {}", path.display());
        if !content.is_empty() {
            file.set_len(0).unwrap();
            file.write_all(content.as_bytes()).unwrap();
        }
        HeldLock { _file: file }
    }
}

/// Each daemon of a test gets its own log file.
fn next_number() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
