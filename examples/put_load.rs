//! A load generator that sends devlogd's own Put Blob requests, N in flight, for
//! `bench/wan_bench.sh`: the raw ceiling of a path at a given concurrency. Not shipped (a
//! cargo example).
//!
//!     put_load --container-url http://127.0.0.1:10000/devstoreaccount1/c --sas SAS \
//!              --files 1000 --size 1024 --concurrency 64 [--prefix load]
//!
//! Every request is what devlogd sends for a small file: `Content-MD5` (checked by the
//! service) and `x-ms-blob-content-md5`, the writer mark and write time as metadata,
//! `If-None-Match: *`, the SAS in the query, the SDK's version and date headers; one
//! connection pool. Prints `FILES files in SECONDS s: RATE files/s` and exits non-zero if any
//! request was not answered 201.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use md5::{Digest, Md5};
use std::time::Instant;

struct Args {
    container_url: String,
    sas: String,
    files: usize,
    size: usize,
    concurrency: usize,
    prefix: String,
}

#[tokio::main]
async fn main() {
    // The HTTP client's TLS needs its crypto provider chosen first, as in devlogd's main.
    devlogd::remote::tls::install_crypto_provider();
    if let Err(e) = run().await {
        eprintln!("put_load: {e}");
        std::process::exit(1);
    }
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        container_url: String::new(),
        sas: String::new(),
        files: 1000,
        size: 1024,
        concurrency: 16,
        prefix: "load".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{arg}: {e}"));
        match arg.as_str() {
            "--container-url" => a.container_url = value.trim_end_matches('/').to_string(),
            "--sas" => a.sas = value.trim_start_matches('?').to_string(),
            "--files" => a.files = number()?,
            "--size" => a.size = number()?,
            "--concurrency" => a.concurrency = number()?.max(1),
            "--prefix" => a.prefix = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.container_url.is_empty() {
        return Err("--container-url is required".into());
    }
    Ok(a)
}

async fn run() -> Result<(), String> {
    let a = parse()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|e| e.to_string())?;
    let writer = "put-load-0000000000000000";
    let started = Instant::now();
    let failures: Vec<String> = futures::stream::iter(0..a.files)
        .map(|i| {
            let client = &client;
            let a = &a;
            async move {
                let name = format!("{}/d{:02}/f{i:06}.md", a.prefix, i % 100);
                let mut body = format!("{name} ").into_bytes();
                body.resize(a.size, b'x');
                let md5: [u8; 16] = Md5::digest(&body).into();
                let md5_b64 = B64.encode(md5);
                let written = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
                let date = httpdate(time::OffsetDateTime::now_utc());
                let url = format!("{}/{name}?{}", a.container_url, a.sas);
                let response = client
                    .put(url)
                    .header("content-length", body.len().to_string())
                    .header("content-type", "application/octet-stream")
                    .header("content-md5", &md5_b64)
                    .header("x-ms-blob-content-md5", &md5_b64)
                    .header("x-ms-blob-type", "BlockBlob")
                    .header("if-none-match", "*")
                    .header(
                        "x-ms-meta-devlogdwriter",
                        devlogd::remote::writer_mark(writer, &md5, &name),
                    )
                    .header("x-ms-meta-devlogdwritten", written.to_string())
                    .header("x-ms-version", "2026-04-06")
                    .header("x-ms-date", date)
                    .header(
                        "x-ms-client-request-id",
                        format!("{:032x}", rand::random::<u128>()),
                    )
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        None
                    }
                    Ok(r) => Some(format!("{name}: HTTP {}", r.status())),
                    Err(e) => Some(format!("{name}: {e}")),
                }
            }
        })
        .buffer_unordered(a.concurrency)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    if let Some(first) = failures.first() {
        return Err(format!(
            "{} of {} requests failed, first: {first}",
            failures.len(),
            a.files
        ));
    }
    println!(
        "{} files in {secs:.3} s: {:.1} files/s",
        a.files,
        a.files as f64 / secs
    );
    Ok(())
}

/// An RFC 7231 date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}
