//! The machine as one shared resource. All tests run in one process, in parallel; a few change
//! what every process on the machine sees (the `fs.inotify.*` sysctls, mounts, the
//! `/run/systemd/system` marker). Such a test holds [`exclusive`] for its whole run; every
//! daemon a test starts holds [`shared`] while it lives, so no other test's daemon runs under a
//! lowered limit or sees a foreign mount. One-shot commands do not take it: they watch nothing.
//!
//! A reader/writer lock of our own rather than `std::sync::RwLock`: a waiting exclusive test
//! goes first (it would starve behind a steady stream of daemons otherwise), yet a thread that
//! already holds a shared guard (a test with two daemons) gets another at once instead of
//! deadlocking behind that waiting writer; and the exclusive test's own daemons pass.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

#[derive(Default)]
struct State {
    /// The thread of the test that holds the machine, if one does.
    exclusive: Option<ThreadId>,
    /// Exclusive tests waiting for the shared guards to go.
    waiting: usize,
    /// Shared guards held, per thread that took them.
    shared: HashMap<ThreadId, usize>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static CHANGED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait(guard: MutexGuard<'static, Option<State>>) -> MutexGuard<'static, Option<State>> {
    CHANGED.wait(guard).unwrap_or_else(|e| e.into_inner())
}

/// Held by a test that changes the machine; released on drop (a failing test included).
pub struct Exclusive(());

/// Held by a running daemon (see [`shared`]).
pub struct Shared(Option<ThreadId>);

/// Waits until no daemon of another test runs, then keeps new ones from starting until dropped.
pub fn exclusive() -> Exclusive {
    let me = thread::current().id();
    let mut guard = lock();
    guard.get_or_insert_with(State::default).waiting += 1;
    loop {
        let state = guard.get_or_insert_with(State::default);
        let others = state.shared.iter().any(|(t, n)| *t != me && *n > 0);
        if state.exclusive.is_none() && !others {
            state.waiting -= 1;
            state.exclusive = Some(me);
            return Exclusive(());
        }
        guard = wait(guard);
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if let Some(state) = lock().as_mut() {
            state.exclusive = None;
        }
        CHANGED.notify_all();
    }
}

/// Waits while another test holds (or waits for) the machine; none needed by that test itself.
pub fn shared() -> Shared {
    let me = thread::current().id();
    let mut guard = lock();
    loop {
        let state = guard.get_or_insert_with(State::default);
        if state.exclusive == Some(me) {
            return Shared(None);
        }
        let reentrant = state.shared.get(&me).is_some_and(|n| *n > 0);
        if state.exclusive.is_none() && (state.waiting == 0 || reentrant) {
            *state.shared.entry(me).or_default() += 1;
            return Shared(Some(me));
        }
        guard = wait(guard);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(owner) = self.0 else { return };
        if let Some(state) = lock().as_mut()
            && let Some(n) = state.shared.get_mut(&owner)
        {
            *n -= 1;
            if *n == 0 {
                state.shared.remove(&owner);
            }
        }
        CHANGED.notify_all();
    }
}

/// The lock itself, with threads and no processes: an exclusive holder keeps other threads'
/// daemons out until it drops; a thread that holds a shared guard gets a second one while an
/// exclusive test waits (a test with two daemons), and the waiting test then goes first.
#[test]
fn exclusive_waits_for_daemons_and_keeps_new_ones_out() {
    use std::sync::mpsc;
    use std::time::Duration;
    const SOON: Duration = Duration::from_millis(300);
    // Machine-changing tests running meanwhile may hold the machine first, for a while.
    const LATER: Duration = Duration::from_secs(300);

    let first = shared();
    let (took, exclusive_took) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let guard = exclusive();
        took.send(()).ok();
        released.recv().ok();
        drop(guard);
    });
    assert!(
        exclusive_took.recv_timeout(SOON).is_err(),
        "exclusive while a daemon runs"
    );
    let second = shared(); // re-entrant: no deadlock behind the waiting exclusive test
    drop((first, second));
    assert!(
        exclusive_took.recv_timeout(LATER).is_ok(),
        "exclusive never came"
    );

    let (started, daemon_started) = mpsc::channel();
    let other = thread::spawn(move || {
        let guard = shared();
        started.send(()).ok();
        drop(guard);
    });
    assert!(
        daemon_started.recv_timeout(SOON).is_err(),
        "a daemon started beside an exclusive test"
    );
    release.send(()).ok();
    assert!(daemon_started.recv_timeout(LATER).is_ok());
    holder.join().ok();
    other.join().ok();
}
