//! A load generator that sends devlogd's own Get Blob requests, N in flight, for
//! `bench/pull_wan_bench.sh`: the raw download ceiling of a path at a given concurrency. Not
//! shipped (a cargo example).
//!
//!     get_load --container-url http://127.0.0.1:10000/devstoreaccount1/c --sas SAS \
//!              --files 1000 --concurrency 64 [--prefix d0] [--timed-listing 1]
//!
//! `--timed-listing 1`: the listing is inside the clock and asks for the blobs' metadata, as
//! a pull's does: the raw ceiling of a pull's own requests (List Blobs, then Get Blob).
//!
//! The blobs are the container's own, found by List Blobs under `--prefix` (default: the whole
//! container) before the clock starts; `--files` takes the first N of them (0, the default:
//! all) and the run fails if there are fewer. Every request is what the SDK's managed
//! download of a small file sends (one partition): `Range: bytes=0-4194303`,
//! `Accept: application/octet-stream`, the SAS in the query, the version and date headers;
//! one connection pool. (devlogd's own Get Blob, `src/remote/azure/get.rs`, now asks for the
//! whole blob, without a range.) Each body is read to its end and its MD5 checked against the
//! blob's (`x-ms-blob-content-md5`, or `Content-MD5`), as devlogd does. Prints
//! `FILES files in SECONDS s: RATE files/s` and exits non-zero if any request was not
//! answered 200 or 206 or a body did not match.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use md5::{Digest, Md5};
use std::time::Instant;

/// The SDK's download partition: its first (and, for a small blob, only) ranged request.
const PARTITION: u64 = 4 * 1024 * 1024;

struct Args {
    container_url: String,
    sas: String,
    files: usize,
    /// The listing (with metadata, as a pull's) counts.
    timed_listing: bool,
    concurrency: usize,
    prefix: String,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("get_load: {e}");
        std::process::exit(1);
    }
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        container_url: String::new(),
        sas: String::new(),
        files: 0,
        timed_listing: false,
        concurrency: 16,
        prefix: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{arg}: {e}"));
        match arg.as_str() {
            "--container-url" => a.container_url = value.trim_end_matches('/').to_string(),
            "--sas" => a.sas = value.trim_start_matches('?').to_string(),
            "--files" => a.files = number()?,
            "--concurrency" => a.concurrency = number()?.max(1),
            "--prefix" => a.prefix = value,
            "--timed-listing" => a.timed_listing = number()? == 1,
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
    // devlogd's reqwest has no TLS provider of its own: without one, building a client panics.
    devlogd::remote::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|e| e.to_string())?;
    let listing_started = Instant::now();
    let mut names = list(&client, &a).await?;
    if a.files > 0 {
        if names.len() < a.files {
            return Err(format!(
                "only {} blobs under {:?}, {} asked for",
                names.len(),
                a.prefix,
                a.files
            ));
        }
        names.truncate(a.files);
    }
    let range = format!("bytes=0-{}", PARTITION - 1);
    let started = if a.timed_listing {
        listing_started
    } else {
        Instant::now()
    };
    let failures: Vec<String> = futures::stream::iter(&names)
        .map(|name| {
            let client = &client;
            let a = &a;
            let range = &range;
            async move {
                let url = format!("{}/{}?{}", a.container_url, encode_path(name), a.sas);
                let date = httpdate(time::OffsetDateTime::now_utc());
                let response = client
                    .get(url)
                    .header("accept", "application/octet-stream")
                    .header("range", range)
                    .header("x-ms-version", "2026-04-06")
                    .header("x-ms-date", date)
                    .header(
                        "x-ms-client-request-id",
                        format!("{:032x}", rand::random::<u128>()),
                    )
                    .send()
                    .await;
                let mut r = match response {
                    Ok(r) if matches!(r.status().as_u16(), 200 | 206) => r,
                    Ok(r) => return Some(format!("{name}: HTTP {}", r.status())),
                    Err(e) => return Some(format!("{name}: {e}")),
                };
                let stored = ["x-ms-blob-content-md5", "content-md5"]
                    .iter()
                    .find_map(|h| r.headers().get(*h))
                    .and_then(|v| B64.decode(v.as_bytes()).ok());
                let mut hasher = Md5::new();
                loop {
                    match r.chunk().await {
                        Ok(Some(chunk)) => hasher.update(&chunk),
                        Ok(None) => break,
                        Err(e) => return Some(format!("{name}: {e}")),
                    }
                }
                let md5: [u8; 16] = hasher.finalize().into();
                match stored {
                    Some(s) if s != md5 => Some(format!("{name}: body does not match its MD5")),
                    _ => None,
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
            names.len()
        ));
    }
    println!(
        "{} files in {secs:.3} s: {:.1} files/s",
        names.len(),
        names.len() as f64 / secs
    );
    Ok(())
}

/// The names of the container's blobs under `--prefix`, every page of List Blobs (timed
/// only with `--timed-listing`).
async fn list(client: &reqwest::Client, a: &Args) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut marker = String::new();
    loop {
        let mut url = format!(
            "{}?restype=container&comp=list&maxresults=5000{}&{}",
            a.container_url,
            if a.timed_listing {
                "&include=metadata"
            } else {
                ""
            },
            a.sas
        );
        for (key, value) in [("prefix", &a.prefix), ("marker", &marker)] {
            if !value.is_empty() {
                url.push_str(&format!(
                    "&{key}={}",
                    encode_path(value).replace('/', "%2F")
                ));
            }
        }
        let r = client
            .get(url)
            .header("x-ms-version", "2026-04-06")
            .header("x-ms-date", httpdate(time::OffsetDateTime::now_utc()))
            .send()
            .await
            .map_err(|e| format!("List Blobs: {e}"))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| format!("List Blobs: {e}"))?;
        if status.as_u16() != 200 {
            return Err(format!("List Blobs: HTTP {status}: {body:.300}"));
        }
        for blob in body.split("<Blob>").skip(1) {
            if let Some(name) = element(blob, "Name") {
                names.push(unescape(name));
            }
        }
        marker = element(&body, "NextMarker")
            .map(unescape)
            .unwrap_or_default();
        if marker.is_empty() {
            return Ok(names);
        }
    }
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// XML's five predefined entities (all a blob name can hold here).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A blob name as a URL path: every byte but unreserved characters and `/` percent-encoded.
fn encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An RFC 7231 date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}
