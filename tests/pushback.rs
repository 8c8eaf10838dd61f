//! The service pushing back: a proxy in front of Azurite (real storage semantics) answers a
//! share of the first Put Blob requests `503 ServerBusy` with `Retry-After: 1`, like Azure
//! under throttling, and forwards everything else byte for byte. devlogd must lower its
//! concurrency, wait out every Retry-After, lose nothing, not spin, and climb back once the
//! pushback stops; and a large file's refused blocks are reported as retries while they
//! happen, not only if one gives up.

mod common;

use common::{Azurite, TestEnv, md5_b64, unique_container};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Throttle {
    /// `away`: how long each request waits before it is answered or relayed (the service's
    /// distance; the concurrency a path can use grows with it).
    fn start(upstream: u16, refuse: Refuse, away: Duration) -> Throttle {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let puts = Arc::new(AtomicUsize::new(0));
        let log = seen.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (log, puts) = (log.clone(), puts.clone());
                thread::spawn(move || {
                    let _ = serve(client, upstream, refuse, away, &log, &puts);
                });
            }
        });
        Throttle { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("proxy log").clone()
    }
}

/// One client connection: each request refused or relayed to Azurite on a connection of its
/// own, until the client closes.
fn serve(
    client: TcpStream,
    upstream: u16,
    refuse: Refuse,
    away: Duration,
    log: &Mutex<Vec<Seen>>,
    puts: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut server: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while let Some((head, body)) = read_message(&mut reader, false)? {
        let request_line = head.lines().next().unwrap_or("").to_string();
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let put_blob = method == "PUT" && !query.contains("comp=") && !query.contains("restype=");
        let put_block = method == "PUT" && query.split('&').any(|pair| pair == "comp=block");
        let refused = match refuse {
            Refuse::SomePutBlobs => {
                put_blob && {
                    let n = puts.fetch_add(1, Ordering::SeqCst);
                    n < REFUSE_WHILE_BELOW && n % REFUSE_EVERY == REFUSE_EVERY - 1
                }
            }
            Refuse::FirstPutBlocks(first) => {
                put_block && puts.fetch_add(1, Ordering::SeqCst) < first
            }
        };
        log.lock().expect("proxy log").push(Seen {
            at: Instant::now(),
            path: path.to_string(),
            refused,
        });
        thread::sleep(away);
        if refused {
            let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>The server is busy.</Message></Error>";
            write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nx-ms-error-code: ServerBusy\r\nRetry-After: {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                RETRY_AFTER.as_secs(),
                body.len()
            )?;
            continue;
        }
        if server.is_none() {
            let s = TcpStream::connect(("127.0.0.1", upstream))?;
            let r = BufReader::new(s.try_clone()?);
            server = Some((s, r));
        }
        let Some((to_server, from_server)) = server.as_mut() else {
            return Ok(());
        };
        to_server.write_all(head.as_bytes())?;
        to_server.write_all(&body)?;
        let Some((response_head, response_body)) = read_message(from_server, method == "HEAD")?
        else {
            return Ok(());
        };
        client.write_all(response_head.as_bytes())?;
        client.write_all(&response_body)?;
    }
    Ok(())
}

/// One HTTP/1.1 message: its head (with the blank line) and body (by Content-Length, or
/// chunked, passed on as it came). `None` at a clean end of the connection.
fn read_message(r: &mut impl BufRead, no_body: bool) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    let status_no_body = head.starts_with("HTTP/1.1 204") || head.starts_with("HTTP/1.1 304");
    if no_body || status_no_body {
        return Ok(Some((head, body)));
    }
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| std::io::Error::other(format!("bad chunk size: {e}")))?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                return Ok(Some((head, body)));
            }
        }
    }
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    body.resize(len, 0);
    r.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

#[test]
fn under_pushback_devlogd_slows_down_waits_out_retry_after_loses_nothing_and_climbs_back() {
    let az = Azurite::shared();
    let container = unique_container("pushback");
    az.create_container(&container);
    // 40 ms away: far enough that the path, not latency at a busy emulator, sets the level
    // the limit comes back to (on loopback latency alone holds it near its floor of 16).
    let throttle = Throttle::start(az.port(), Refuse::SomePutBlobs, Duration::from_millis(40));
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"http://127.0.0.1:{}/devstoreaccount1/{container}\"\n",
        throttle.port
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
    assert_eq!(
        seen.len(),
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
        throttle.port
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
