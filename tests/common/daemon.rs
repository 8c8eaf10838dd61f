//! A running `devlogd run` for tests: started in a [`TestEnv`], ready once its control
//! socket answers, killed on drop.

use super::{TestEnv, wait_for};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A running `devlogd run`, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn start(env: &TestEnv) -> Daemon {
        Self::start_with(env, &[])
    }

    pub fn start_with(env: &TestEnv, vars: &[(&str, &str)]) -> Daemon {
        let log = env.root().join(format!("daemon-{}.log", next_number()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = env.devlogd();
        cmd.arg("run")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn devlogd run");
        let mut d = Daemon {
            child: Some(child),
            log,
        };
        wait_for(
            Duration::from_secs(30),
            "the daemon's control socket",
            || {
                if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("devlogd run exited early ({status}):\n{}", d.log_text());
                }
                let out = env.run(&["ctl", "status", "--json"]);
                out.success().then_some(())
            },
        );
        d
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

/// Each daemon of a test gets its own log file.
fn next_number() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
