//! A TCP proxy that delays every byte by a fixed time in each direction: a distant service
//! on loopback, for `bench/wan_bench.sh`. Not shipped (a cargo example).
//!
//!     wan_proxy --upstream 127.0.0.1:10000 --delay-ms 20 [--listen 127.0.0.1:0]
//!
//! `--delay-ms` is one way (20 gives a 40 ms round trip). Prints `listening on ADDR` once
//! ready. Order is kept and there is no bandwidth cap: each direction of a connection has a
//! reader that timestamps chunks as they arrive and a writer that sends each chunk once its
//! time has come, so a chunk is never held longer than the delay, however many follow it.
//! One task per direction per connection, on a multi-threaded runtime: at a delay of 0 the
//! proxy costs a copy, not a bottleneck.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("wan_proxy: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut upstream = None;
    let mut delay_ms: u64 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--upstream" => upstream = Some(value()?),
            "--delay-ms" => delay_ms = value()?.parse().map_err(|e| format!("--delay-ms: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let upstream = upstream.ok_or("--upstream HOST:PORT is required")?;
    let delay = Duration::from_millis(delay_ms);
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {addr}");
    loop {
        let (client, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            match TcpStream::connect(&upstream).await {
                Ok(server) => splice(client, server, delay),
                Err(e) => eprintln!("wan_proxy: cannot connect to {upstream}: {e}"),
            }
        });
    }
}

/// Both directions of one connection, each delayed by `delay`.
fn splice(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    pipe(client_read, server_write, delay);
    pipe(server_read, client_write, delay);
}

/// Copy `from` into `to`, each chunk sent `delay` after it was read; EOF is passed on (as a
/// half close) after the last chunk.
fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            if !delay.is_zero() {
                tokio::time::sleep_until(due).await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
}
