//! The service pushing back: a proxy in front of Azurite (real storage semantics) answers a
//! share of the first Put Blob requests `503 ServerBusy` with `Retry-After: 1`, like Azure
//! under throttling, and forwards everything else byte for byte. devlogd must lower its
//! concurrency, wait out every Retry-After, lose nothing, not spin, and climb back once the
//! pushback stops; and a large file's refused blocks are reported as retries while they
//! happen, not only if one gives up.

use crate::common;

use common::hostile::{Action, Hostile, Resp};
use common::{Azurite, TestEnv, md5_b64, unique_container};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const FILES: usize = 300;
/// Every 8th Put Blob among the first 48 is refused (6 in all).
const REFUSE_EVERY: usize = 8;
const REFUSE_WHILE_BELOW: usize = 48;
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    path: String,
    refused: bool,
}

/// Which requests the proxy refuses.
#[derive(Clone, Copy)]
enum Refuse {
    /// Every [`REFUSE_EVERY`]th Put Blob among the first [`REFUSE_WHILE_BELOW`].
    SomePutBlobs,
    /// The first N Put Block requests (a large file's blocks).
    FirstPutBlocks(usize),
}

struct Throttle {
    service: Hostile,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Throttle {
    /// `away`: how long each request waits before it is answered or relayed (the service's
    /// distance; the concurrency a path can use grows with it).
    fn start(upstream: u16, refuse: Refuse, away: Duration) -> Throttle {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let puts = AtomicUsize::new(0);
        let log = seen.clone();
        let service = Hostile::proxy(upstream, move |req| {
            let refused = match refuse {
                Refuse::SomePutBlobs => {
                    req.is_put_blob() && {
                        let n = puts.fetch_add(1, Ordering::SeqCst);
                        n < REFUSE_WHILE_BELOW && n % REFUSE_EVERY == REFUSE_EVERY - 1
                    }
                }
                Refuse::FirstPutBlocks(first) => {
                    req.is_put_block() && puts.fetch_add(1, Ordering::SeqCst) < first
                }
            };
            log.lock().expect("proxy log").push(Seen {
                at: Instant::now(),
                path: req.path.clone(),
                refused,
            });
            thread::sleep(away);
            if refused {
                Action::Reply(
                    Resp::error(503, "ServerBusy", "The server is busy.")
                        .header("Retry-After", &RETRY_AFTER.as_secs().to_string()),
                )
            } else {
                Action::Forward
            }
        });
        Throttle { service, seen }
    }

    fn port(&self) -> u16 {
        self.service.port()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("proxy log").clone()
    }
}

#[test]
fn under_pushback_devlogd_slows_down_waits_out_retry_after_loses_nothing_and_climbs_back() {
    // Its own emulator: the level the limit climbs back to depends on the latency it sees,
    // which other tests loading the shared one would raise.
    let az = &Azurite::start();
    let container = unique_container("pushback");
    az.create_container(&container);
    // 40 ms away: far enough that the path, not latency at a busy emulator, sets the level
    // the limit comes back to (on loopback latency alone holds it near its floor of 16).
    let throttle = Throttle::start(az.port(), Refuse::SomePutBlobs, Duration::from_millis(40));
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{}/devstoreaccount1/{container}\"\n",
        throttle.port()
    ));
    let mut files = Vec::new();
    for i in 0..FILES {
        let rel = format!("d{}/n{i:03}.md", i % 10);
        let bytes = format!("note {i}\n").repeat(1 + i % 7).into_bytes();
        env.write_file(&rel, &bytes);
        files.push((rel, bytes));
    }

    let out = env.run(&["push", "--json"]);
    out.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    assert_eq!(report["uploaded"], FILES, "{}", out.stdout);

    // Concurrency: down under pushback, back up once it stopped.
    let c = &report["concurrency"];
    let (start, min, last) = (
        c["start"].as_u64().unwrap_or(0),
        c["min"].as_u64().unwrap_or(0),
        c["final"].as_u64().unwrap_or(0),
    );
    assert_eq!(start, 64, "{c}");
    // Refusals of requests sent before a cut do not cut again (one cut per round
    // trip, as TCP does), so the first burst halves it once at least.
    assert!(
        min <= start / 2,
        "the limit did not fall under pushback: {c}"
    );
    assert!(last > min, "the limit did not come back up: {c}");
    assert!(c["max"].as_u64().unwrap_or(0) <= 128, "{c}");

    // Nothing lost: every file there with its bytes, read back by the harness's own client.
    let listed: std::collections::BTreeMap<String, Option<String>> = az
        .list_blobs(&container)
        .into_iter()
        .map(|b| (b.name, b.content_md5_b64))
        .collect();
    assert_eq!(listed.len(), FILES);
    for (rel, bytes) in &files {
        assert_eq!(listed.get(rel), Some(&Some(md5_b64(bytes))), "{rel}");
        assert_eq!(
            az.get_blob(&container, rel).as_deref(),
            Some(&bytes[..]),
            "{rel}"
        );
    }

    // No spin: each refused put tried once more, nothing else twice.
    let seen = throttle.seen();
    let refused: Vec<&Seen> = seen.iter().filter(|s| s.refused).collect();
    assert_eq!(refused.len(), REFUSE_WHILE_BELOW / REFUSE_EVERY);
    // Besides the push's own requests, one look for an encryption key before it starts.
    let key_checks = seen
        .iter()
        .filter(|s| s.path.ends_with("/.devlog-history/.key"))
        .count();
    assert_eq!(key_checks, 1, "one look for an encryption key");
    assert_eq!(
        seen.len() - key_checks,
        FILES + refused.len(),
        "requests beyond one retry per refusal"
    );

    // Retry-After honoured: the refused blob not asked again before it passed, and no new
    // request at all while it ran (a margin for requests already on their way).
    let margin = Duration::from_millis(300);
    for r in &refused {
        let again = seen
            .iter()
            .find(|s| s.path == r.path && s.at > r.at)
            .unwrap_or_else(|| panic!("{} was never retried", r.path));
        assert!(
            again.at - r.at >= RETRY_AFTER - Duration::from_millis(50),
            "{} retried {:?} after a Retry-After of {RETRY_AFTER:?}",
            r.path,
            again.at - r.at
        );
        let during: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.at > r.at + margin && s.at < r.at + RETRY_AFTER - margin)
            .collect();
        assert!(
            during.is_empty(),
            "{} request(s) sent while a Retry-After was in force, first {:?} after the 503",
            during.len(),
            during.first().map(|s| s.at - r.at)
        );
    }
}

#[test]
fn a_large_files_refused_blocks_are_reported_as_retries_while_they_happen() {
    let az = Azurite::shared();
    let container = unique_container("blockretry");
    az.create_container(&container);
    // The first two Put Block requests of a 9 MiB file (three 4 MiB blocks) refused.
    let throttle = Throttle::start(az.port(), Refuse::FirstPutBlocks(2), Duration::ZERO);
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{}/devstoreaccount1/{container}\"\n",
        throttle.port()
    ));
    let big: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    env.write_file("big.md", &big);

    let out = env.run(&["push"]);
    out.assert_code(0);
    // Each block is retried on its own inside the one put; the trouble must still show
    // (as it does in `ctl status`, fed by the same events), not only if a block gives up.
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("retrying big.md") && said.contains("busy"),
        "no retry reported for the refused blocks:\n{said}"
    );
    let refused = throttle.seen().iter().filter(|s| s.refused).count();
    assert_eq!(refused, 2, "the proxy refused {refused} blocks");
    let listed: Vec<_> = az.list_blobs(&container);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].content_md5_b64, Some(md5_b64(&big)));
    assert_eq!(az.get_blob(&container, "big.md").as_deref(), Some(&big[..]));
}
