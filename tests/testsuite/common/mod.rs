//! Shared harness for the integration tests: a real Azurite blob emulator, Blob REST helpers that
//! are independent of devlogd's own code (so assertions do not trust what they test), and a
//! throwaway environment (HOME, XDG directories, journal root) to run the `devlogd` binary in.
//!
//! Every module of the test binary (`tests/testsuite/main.rs`) uses only part of this file,
//! hence the module-wide `#![allow(dead_code)]`.
//!
//! Azurite comes from `tests/azurite` (npm, pinned in its package-lock.json): `scripts/test`
//! installs it and exports `DEVLOGD_AZURITE_BIN`. A missing emulator is a loud failure, never a
//! silent skip.

#![allow(dead_code)]

pub mod backend;
pub mod daemon;
pub mod hostile;
pub mod machine;
pub mod status;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

/// Azurite's well-known development account (public, documented by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
/// The well-known key of [`ACCOUNT`].
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The env var through which the tests hand a SAS token to devlogd.
pub const SAS_ENV: &str = "AZURE_STORAGE_SAS_TOKEN";
/// The env var `scripts/test` sets to the installed `azurite-blob`.
pub const AZURITE_BIN_ENV: &str = "DEVLOGD_AZURITE_BIN";

/// Service version the SAS is signed for: 2020-12-06 or later uses the string-to-sign with the
/// encryption-scope line. Azurite 3.37 accepts it (checked at every start, see `check_sas`).
const SAS_VERSION: &str = "2021-08-06";
/// How long Azurite may take to come up before a test fails.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop may take (Azurite closes gracefully on SIGTERM, flushing its database).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts to start on a fresh port when the chosen one was taken in the meantime.
const START_ATTEMPTS: u32 = 5;
/// Bound for one REST call from a helper.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "Azurite is installed by `scripts/test` (run the tests through it), \
     or by hand with `cd tests/azurite && npm ci`; or set DEVLOGD_AZURITE_BIN to an azurite-blob \
     binary";

/// Run by `sh -c`, with `$0` the azurite-blob binary and `$@` its arguments. Standard input is a
/// pipe whose only writer is the test process: when the test process closes it (on drop, on
/// `stop`, or because the process ended, even by SIGKILL), the reader stops Azurite with SIGTERM
/// and, once it is gone, the log directory is removed. If Azurite exits on its own (a port
/// conflict, a missing `node`), the wrapper exits with its status and keeps the log, so the
/// harness can show it.
const WRAPPER: &str = r#"exec 3<&0 </dev/null
"$0" "$@" 3<&- &
pid=$!
{ read -r _ <&3; : >"$DEVLOGD_AZURITE_LOGDIR/stopping"; kill "$pid" 2>/dev/null; } &
exec 3<&-
wait "$pid"
st=$?
if [ -e "$DEVLOGD_AZURITE_LOGDIR/stopping" ]; then rm -rf "$DEVLOGD_AZURITE_LOGDIR"; fi
exit "$st"
"#;

/// Everything but RFC 3986 unreserved characters is percent-encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Query values: the same set (so `+`, `/`, `=`, `:` and `,` are encoded).
const QUERY_VALUE: &AsciiSet = SEGMENT;

/// Ports handed out in this process, so that two emulators started at once never race for one.
static PORTS_TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Where Azurite keeps its data.
#[derive(Debug, Clone)]
enum Persistence {
    InMemory,
    Location(PathBuf),
}

/// The wrapper process of a running Azurite, and its log.
struct Running {
    child: Child,
    /// Closing this stops Azurite (see [`WRAPPER`]).
    stdin: Option<ChildStdin>,
    log_dir: tempfile::TempDir,
}

impl Running {
    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("azurite.log")
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        lines[start..].join("\n")
    }

    /// Closes the pipe, waits for the wrapper (and so Azurite) to exit.
    fn shut_down(&mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "Azurite did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                        self.log_tail()
                    ));
                }
                Err(e) => return Err(format!("waiting for the Azurite wrapper: {e}")),
            }
        }
    }
}

/// A running Azurite blob service on 127.0.0.1, stopped on drop and when the test process ends
/// (however it ends).
pub struct Azurite {
    port: u16,
    persistence: Persistence,
    process: Option<Running>,
    agent: ureq::Agent,
    sas: String,
}

impl Azurite {
    /// Starts an in-memory Azurite on a free port.
    pub fn start() -> Azurite {
        Self::launch(Persistence::InMemory, None)
    }

    /// Starts Azurite keeping its data in `dir`, on `port` or a free one. Stop it and
    /// [`restart`](Self::restart) it (same port, same data), or start another one on
    /// `Some(old.port())` with the same `dir`.
    pub fn start_persistent(dir: &Path, port: Option<u16>) -> Azurite {
        fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("creating Azurite's data dir {}: {e}", dir.display()));
        Self::launch(Persistence::Location(dir.to_path_buf()), port)
    }

    /// The process-wide in-memory instance, for tests that just need a server. Each test uses
    /// its own container, see [`unique_container`].
    pub fn shared() -> &'static Azurite {
        static SHARED: OnceLock<Azurite> = OnceLock::new();
        SHARED.get_or_init(Azurite::start)
    }

    fn launch(persistence: Persistence, port: Option<u16>) -> Azurite {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .proxy(None)
            .build()
            .into();
        let mut az = Azurite {
            port: port.unwrap_or(0),
            persistence,
            process: None,
            agent,
            sas: account_sas_signed_with(ACCOUNT_KEY),
        };
        az.spawn_until_ready(port.is_none());
        az
    }

    /// The port Azurite listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The contents of every version in the history area of `prefix` in `container`.
    pub fn history_contents(&self, container: &str, prefix: &str) -> Vec<Vec<u8>> {
        let area = format!("{prefix}/.devlog-history/");
        self.list_blobs(container)
            .into_iter()
            .filter(|blob| blob.name.starts_with(&area))
            .filter_map(|blob| self.get_blob(container, &blob.name))
            .collect()
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`
    pub fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1/CONTAINER`, what devlogd's `[remote] url` takes.
    pub fn container_url(&self, container: &str) -> String {
        format!("{}/{container}", self.account_url())
    }

    /// The URL of one blob, without credentials; each `/`-separated segment of `name` is
    /// percent-encoded.
    pub fn blob_url(&self, container: &str, name: &str) -> String {
        format!(
            "{}/{}",
            self.container_url(container),
            encode_blob_path(name)
        )
    }

    /// An account SAS (query string, no leading `?`) for the dev account: blob service, all
    /// resource types, read/write/delete/list/add/create/update/process, valid until 2099.
    pub fn account_sas(&self) -> String {
        self.sas.clone()
    }

    /// The agent the helpers use (4xx/5xx are responses, not errors), for tests that make their
    /// own requests.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Whether something accepts TCP connections on the port.
    pub fn is_listening(&self) -> bool {
        port_open(self.port)
    }

    /// Stops Azurite and waits until its port no longer accepts connections.
    pub fn stop(&mut self) {
        if let Some(mut running) = self.process.take()
            && let Err(e) = running.shut_down()
        {
            panic!("stopping Azurite on port {}: {e}", self.port);
        }
        let port = self.port;
        poll_until(STOP_TIMEOUT, || (!port_open(port)).then_some(())).unwrap_or_else(|| {
            panic!(
                "Azurite stopped but port {port} still accepts connections after {STOP_TIMEOUT:?}"
            )
        });
    }

    /// Stops Azurite if it runs, and starts it again on the same port with the same storage
    /// (an in-memory instance comes back empty).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_until_ready(false);
    }

    fn spawn_until_ready(&mut self, may_change_port: bool) {
        let bin = azurite_bin();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            if may_change_port {
                self.port = free_port();
            }
            let mut running = self.spawn(&bin);
            match self.wait_ready(&mut running) {
                Ok(()) => {
                    self.process = Some(running);
                    self.check_sas();
                    return;
                }
                Err(StartError::PortTaken) if may_change_port && attempt < START_ATTEMPTS => {
                    failures.push(format!("attempt {attempt}: port {} was taken", self.port));
                    let _ = running.shut_down();
                }
                Err(StartError::PortTaken) => {
                    let log = running.log_tail();
                    let _ = running.shut_down();
                    panic!(
                        "Azurite could not listen on 127.0.0.1:{}: the port is already in use \
                         (earlier attempts: {failures:?})\n--- Azurite log ---\n{log}\n---",
                        self.port
                    );
                }
                Err(StartError::Other(e)) => {
                    let log = running.log_tail();
                    let _ = running.shut_down();
                    panic!(
                        "Azurite ({}) did not start on 127.0.0.1:{}: {e}\n{}\n\
                         earlier attempts: {failures:?}\n--- Azurite log ---\n{log}\n---\n\
                         {INSTALL_HINT}",
                        bin.display(),
                        self.port,
                        describe_node(),
                    );
                }
            }
        }
        unreachable!("the last attempt either returns or panics");
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(self.port.to_string());
        match &self.persistence {
            Persistence::InMemory => args.push("--inMemoryPersistence".into()),
            Persistence::Location(dir) => {
                args.push("--location".into());
                args.push(dir.display().to_string());
            }
        }
        args
    }

    /// The exact command line (for messages and for `bench/`, which mirrors it).
    pub fn command_line(&self) -> String {
        format!("{} {}", azurite_bin().display(), self.args().join(" "))
    }

    fn spawn(&self, bin: &Path) -> Running {
        let log_dir = tempfile::Builder::new()
            .prefix("devlogd-azurite-")
            .tempdir()
            .expect("creating a temp dir for Azurite's log");
        let log_path = log_dir.path().join("azurite.log");
        let log = File::create(&log_path).expect("creating Azurite's log file");
        let log_err = log.try_clone().expect("cloning Azurite's log file handle");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg(bin)
            .args(self.args())
            .env("DEVLOGD_AZURITE_LOGDIR", log_dir.path())
            .current_dir(log_dir.path())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning `sh` to run Azurite: {e}"));
        let stdin = child.stdin.take();
        Running {
            child,
            stdin,
            log_dir,
        }
    }

    /// Polls until Azurite says it listens and answers HTTP, or fails.
    fn wait_ready(&self, running: &mut Running) -> Result<(), StartError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let probe_url = format!("{}?comp=list", self.account_url());
        loop {
            if let Some(status) = running
                .child
                .try_wait()
                .map_err(|e| StartError::Other(e.to_string()))?
            {
                let log = running.log_tail();
                return Err(if log.contains("EADDRINUSE") {
                    StartError::PortTaken
                } else {
                    StartError::Other(format!("it exited with {status}"))
                });
            }
            // Our own process announcing it bound the port: a server that answers on the port
            // could be another one if ours lost a race for it.
            let listening = fs::read_to_string(running.log_path())
                .map(|l| l.contains("successfully listens on"))
                .unwrap_or(false);
            if listening && TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                let response = self
                    .agent
                    .get(&probe_url)
                    .config()
                    .timeout_global(Some(Duration::from_secs(2)))
                    .build()
                    .call();
                if let Ok(response) = response {
                    let server = header(&response, "server").unwrap_or_default();
                    if server.starts_with("Azurite-Blob") {
                        return Ok(());
                    }
                    return Err(StartError::Other(format!(
                        "port {} answers, but with Server: {server:?}, not Azurite-Blob",
                        self.port
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(format!(
                    "not ready within {STARTUP_TIMEOUT:?} (listening line seen: {listening})"
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails the start if Azurite refuses our SAS: every helper depends on it.
    fn check_sas(&self) {
        let url = format!("{}?comp=list&{}", self.account_url(), self.sas);
        let (status, body) = self.send(self.agent.get(&url).call(), "GET", &url);
        assert_eq!(
            status, 200,
            "Azurite is up but refused the harness's account SAS (List Containers): {body}"
        );
    }

    fn with_sas(&self, url: String) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{}", self.sas)
    }

    /// Turns a ureq result into (status, body text), panicking on transport errors. The
    /// messages name the URL without its query, so no signature is printed.
    fn send(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        method: &str,
        url: &str,
    ) -> (u16, String) {
        let mut response = result.unwrap_or_else(|e| panic!("{method} {}: {e}", strip_query(url)));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {}: reading the body: {e}", strip_query(url)));
        (status, body)
    }

    /// Creates a container (it must not exist yet).
    pub fn create_container(&self, container: &str) {
        let url = self.with_sas(format!(
            "{}?restype=container",
            self.container_url(container)
        ));
        let (status, body) = self.send(self.agent.put(&url).send_empty(), "PUT", &url);
        assert_eq!(status, 201, "creating container {container:?}: {body}");
    }

    /// Deletes a container and everything in it (another client, or a mistake in the portal).
    pub fn delete_container(&self, container: &str) {
        let url = self.with_sas(format!(
            "{}?restype=container",
            self.container_url(container)
        ));
        let (status, body) = self.send(self.agent.delete(&url).call(), "DELETE", &url);
        assert_eq!(status, 202, "deleting container {container:?}: {body}");
    }

    /// Every blob in `container`, in the service's (lexicographic) order; none when the
    /// container does not exist.
    pub fn list_blobs(&self, container: &str) -> Vec<BlobInfo> {
        self.list_blobs_paged(container, None)
    }

    /// Like [`list_blobs`](Self::list_blobs), asking for at most `page_size` per response, to
    /// exercise the NextMarker paging.
    pub fn list_blobs_paged(&self, container: &str, page_size: Option<u32>) -> Vec<BlobInfo> {
        self.list_pages(container, page_size, None)
            .iter()
            .flat_map(|body| parse_blob_list(body))
            .collect()
    }

    /// Every `<Blob>…</Blob>` element of List Blobs with `include` (e.g. `metadata`), as the
    /// service wrote it: name, properties and metadata, for tests that check all of it.
    pub fn list_blob_elements(&self, container: &str, include: &str) -> Vec<String> {
        let mut out = Vec::new();
        for body in self.list_pages(container, None, Some(include)) {
            let mut rest = body.as_str();
            while let Some(start) = rest.find("<Blob>") {
                let len = rest[start..]
                    .find("</Blob>")
                    .unwrap_or_else(|| panic!("List Blobs: unterminated <Blob> in {body}"));
                out.push(rest[start..start + len + "</Blob>".len()].to_string());
                rest = &rest[start + len..];
            }
        }
        out
    }

    /// The body of every page of List Blobs; none when the container does not exist.
    fn list_pages(
        &self,
        container: &str,
        page_size: Option<u32>,
        include: Option<&str>,
    ) -> Vec<String> {
        let mut pages = Vec::new();
        let mut marker = String::new();
        for _page in 0..100_000 {
            let mut url = format!(
                "{}?restype=container&comp=list",
                self.container_url(container)
            );
            if let Some(n) = page_size {
                url.push_str(&format!("&maxresults={n}"));
            }
            if let Some(include) = include {
                url.push_str(&format!("&include={include}"));
            }
            if !marker.is_empty() {
                url.push_str("&marker=");
                url.push_str(&utf8_percent_encode(&marker, QUERY_VALUE).to_string());
            }
            let url = self.with_sas(url);
            let (status, body) = self.send(self.agent.get(&url).call(), "GET", &url);
            if status == 404 && body.contains("ContainerNotFound") {
                return pages; // nothing pushed yet: no container, no blobs
            }
            assert_eq!(status, 200, "listing container {container:?}: {body}");
            marker = xml_text(&body, "NextMarker").unwrap_or_default();
            pages.push(body);
            if marker.is_empty() {
                return pages;
            }
        }
        panic!("listing container {container:?}: the NextMarker chain did not end");
    }

    /// The content of a blob, or `None` if there is no such blob.
    pub fn get_blob(&self, container: &str, name: &str) -> Option<Vec<u8>> {
        let url = self.with_sas(self.blob_url(container, name));
        let mut response = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {}: {e}", strip_query(&url)));
        match response.status().as_u16() {
            200 => Some(
                response
                    .body_mut()
                    .with_config()
                    .limit(1024 * 1024 * 1024)
                    .read_to_vec()
                    .unwrap_or_else(|e| panic!("reading blob {name:?}: {e}")),
            ),
            404 => None,
            status => {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                panic!("GET blob {name:?} in {container:?}: HTTP {status}: {body}")
            }
        }
    }

    /// Writes a block blob as another writer would (unconditionally, overwriting), with its
    /// Content-MD5. Returns the new ETag.
    pub fn put_blob(&self, container: &str, name: &str, bytes: &[u8]) -> String {
        self.put_blob_with_metadata(container, name, bytes, &[])
    }

    /// [`put_blob`](Self::put_blob) with `metadata` (`x-ms-meta-KEY: VALUE`), as a copy that
    /// keeps another blob's metadata would write it.
    pub fn put_blob_with_metadata(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
        metadata: &[(String, String)],
    ) -> String {
        let url = self.with_sas(self.blob_url(container, name));
        let mut request = self
            .agent
            .put(&url)
            .header("x-ms-blob-type", "BlockBlob")
            .header("Content-MD5", md5_b64(bytes))
            .header("Content-Type", "application/octet-stream");
        for (key, value) in metadata {
            request = request.header(format!("x-ms-meta-{key}"), value);
        }
        let result = request.send(bytes);
        let mut response = result.unwrap_or_else(|e| panic!("PUT {}: {e}", strip_query(&url)));
        let status = response.status().as_u16();
        let etag = header(&response, "etag");
        let body = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "PUT blob {name:?} in {container:?}: {body}");
        etag.unwrap_or_else(|| panic!("PUT blob {name:?}: no ETag in the response"))
    }

    /// The metadata of a blob (`x-ms-meta-KEY` headers of Get Blob Properties), sorted.
    pub fn blob_metadata(&self, container: &str, name: &str) -> Vec<(String, String)> {
        let url = self.with_sas(self.blob_url(container, name));
        let response = self
            .agent
            .head(&url)
            .call()
            .unwrap_or_else(|e| panic!("HEAD {}: {e}", strip_query(&url)));
        assert_eq!(response.status().as_u16(), 200, "HEAD blob {name:?}");
        let mut out: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(key, value)| {
                let key = key.as_str().strip_prefix("x-ms-meta-")?;
                Some((key.to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        out.sort();
        out
    }

    /// Deletes a blob; `false` if there was none.
    pub fn delete_blob(&self, container: &str, name: &str) -> bool {
        let url = self.with_sas(self.blob_url(container, name));
        let (status, body) = self.send(self.agent.delete(&url).call(), "DELETE", &url);
        match status {
            202 => true,
            404 => false,
            _ => panic!("DELETE blob {name:?} in {container:?}: HTTP {status}: {body}"),
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut running) = self.process.take()
            && let Err(e) = running.shut_down()
        {
            eprintln!("warning: {e}");
        }
    }
}

enum StartError {
    PortTaken,
    Other(String),
}

/// One entry of List Blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    /// `Content-MD5` as the service reports it (base64), if the blob has one.
    pub content_md5_b64: Option<String>,
    /// In its HTTP form, quoted (`"0x…"`), as in an ETag header and as [`Azurite::put_blob`]
    /// returns it; List Blobs itself gives it unquoted.
    pub etag: String,
    pub size: u64,
}

/// Builds an account SAS for the dev account, signed with `key_b64` (pass another key to get a
/// SAS the service must refuse). Per Microsoft's "Create an account SAS", versions 2020-12-06 and
/// later: the signature is HMAC-SHA256, keyed with the base64-decoded account key, over
/// `account \n sp \n ss \n srt \n st \n se \n sip \n spr \n sv \n ses \n`, base64-encoded.
pub fn account_sas_signed_with(key_b64: &str) -> String {
    account_sas_for(key_b64, "rwdlacup", "2099-01-01T00:00:00Z")
}

/// [`account_sas_signed_with`] with the permissions `sp` (`rl`: read-only) and the expiry
/// `se` (RFC 3339) given.
pub fn account_sas_for(key_b64: &str, sp: &str, se: &str) -> String {
    let (ss, srt, spr) = ("b", "sco", "https,http");
    let string_to_sign = [ACCOUNT, sp, ss, srt, "", se, "", spr, SAS_VERSION, "", ""].join("\n");
    let sig = sign(key_b64, &string_to_sign);
    query(&[
        ("sv", SAS_VERSION),
        ("ss", ss),
        ("srt", srt),
        ("sp", sp),
        ("se", se),
        ("spr", spr),
        ("sig", &sig),
    ])
}

/// A service SAS for one container (`sr=c`), as the portal's "Generate SAS" on a container
/// makes: it may use the container's blobs but never create the container itself.
pub fn container_sas_for(key_b64: &str, container: &str, sp: &str, se: &str) -> String {
    let resource = format!("/blob/{ACCOUNT}/{container}");
    let spr = "https,http";
    // sp, st, se, canonicalized resource, si, sip, spr, sv, sr, snapshot time,
    // encryption scope, rscc, rscd, rsce, rscl, rsct
    let mut fields = vec![sp, "", se, &resource, "", "", spr, SAS_VERSION, "c"];
    fields.extend([""; 7]);
    let sig = sign(key_b64, &fields.join("\n"));
    query(&[
        ("sv", SAS_VERSION),
        ("sr", "c"),
        ("sp", sp),
        ("se", se),
        ("spr", spr),
        ("sig", &sig),
    ])
}

/// The SAS signature: HMAC-SHA256 of the string to sign with the account key, in base64.
fn sign(key_b64: &str, string_to_sign: &str) -> String {
    let key = BASE64
        .decode(key_b64)
        .expect("the account key is not base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The time `from_now` ahead, as a SAS's `se` (RFC 3339, whole seconds).
pub fn expiry_in(from_now: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + from_now)
        .replace_nanosecond(0)
        .expect("0 ns is a valid time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time formats as RFC 3339")
}

/// A SAS query string: each value percent-encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes each `/`-separated segment of a blob name, keeping `/` as the separator.
pub fn encode_blob_path(name: &str) -> String {
    name.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Base64 of the MD5 of `bytes`, as in a `Content-MD5` header.
pub fn md5_b64(bytes: &[u8]) -> String {
    BASE64.encode(Md5::digest(bytes))
}

/// A container name no other test in this run uses: `prefix` (lowercased, reduced to letters,
/// digits and single hyphens), the process id and a counter; always a valid Azure container
/// name (3–63 characters).
pub fn unique_container(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut clean = String::new();
    for c in prefix.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            clean.push(c);
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    clean.truncate(40);
    let clean = clean.trim_end_matches('-');
    let clean = if clean.is_empty() { "t" } else { clean };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{clean}-{:x}-{n}", std::process::id())
}

/// Calls `f` until it returns `Some`, for at most `timeout`; `None` if it never did. Short
/// pauses between calls, growing from 5 ms to 100 ms.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// [`poll_until`], panicking with `what` if `f` never returned `Some`.
pub fn wait_for<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

fn azurite_bin() -> PathBuf {
    let (bin, source) = match std::env::var_os(AZURITE_BIN_ENV) {
        Some(v) if !v.is_empty() => (PathBuf::from(v), AZURITE_BIN_ENV),
        _ => (
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/azurite/node_modules/.bin/azurite-blob"),
            "the default location",
        ),
    };
    if !bin.is_file() {
        panic!(
            "Azurite's azurite-blob is not at {} (from {source}). {INSTALL_HINT}.",
            bin.display()
        );
    }
    bin
}

fn describe_node() -> String {
    match Command::new("node").arg("--version").output() {
        Ok(out) => format!("node {}", String::from_utf8_lossy(&out.stdout).trim()),
        Err(e) => format!("`node` could not be run ({e}): Azurite needs Node.js"),
    }
}

/// A loopback port with nothing listening on it, for "unreachable" cases: reserved like
/// [`free_port`]'s, so no emulator this process starts later takes it.
pub fn dead_port() -> u16 {
    free_port()
}

/// A loopback port nothing listens on now and that this process has not handed out before.
fn free_port() -> u16 {
    let mut taken = PORTS_TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a free port");
        let port = listener.local_addr().expect("local address").port();
        if taken.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port after 100 tries");
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Splits a List Blobs response into its `<Blob>` elements.
pub fn parse_blob_list(xml: &str) -> Vec<BlobInfo> {
    let mut blobs = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Blob>") {
        let after = &rest[start + "<Blob>".len()..];
        let end = after
            .find("</Blob>")
            .unwrap_or_else(|| panic!("List Blobs: unterminated <Blob> in {xml}"));
        let blob = &after[..end];
        let name =
            xml_text(blob, "Name").unwrap_or_else(|| panic!("List Blobs: no <Name> in {blob}"));
        let size = xml_text(blob, "Content-Length")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("List Blobs: no <Content-Length> in {blob}"));
        blobs.push(BlobInfo {
            name,
            content_md5_b64: xml_text(blob, "Content-MD5").filter(|s| !s.is_empty()),
            etag: xml_text(blob, "Etag")
                .map(|e| {
                    if e.starts_with('"') {
                        e
                    } else {
                        format!("\"{e}\"")
                    }
                })
                .unwrap_or_else(|| panic!("List Blobs: no <Etag> in {blob}")),
            size,
        });
        rest = &after[end + "</Blob>".len()..];
    }
    blobs
}

/// The unescaped text of the first `<tag>…</tag>` (attributes allowed) in `xml`; `Some("")` for
/// `<tag/>`; `None` if absent.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}");
    let mut from = 0;
    while let Some(i) = xml[from..].find(&open) {
        let at = from + i + open.len();
        let rest = &xml[at..];
        // `<Name` must not match `<NameSomething`.
        match rest.chars().next() {
            Some('>') | Some(' ') | Some('/') => {}
            _ => {
                from = at;
                continue;
            }
        }
        let gt = rest.find('>')?;
        if rest[..gt].ends_with('/') {
            return Some(String::new());
        }
        let body = &rest[gt + 1..];
        let close = body.find(&format!("</{tag}>"))?;
        return Some(xml_unescape(&body[..close]));
    }
    None
}

/// The five predefined entities and numeric character references.
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if entity.starts_with("#x") || entity.starts_with("#X") => {
                u32::from_str_radix(&entity[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A throwaway world for one devlogd run: a temp dir with `home/`, the journal root
/// `home/.devlog/`, and the XDG config/state/data/runtime dirs.
pub struct TestEnv {
    dir: tempfile::TempDir,
    sas: Option<String>,
}

/// What a finished devlogd run printed.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics, showing both streams, unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "devlogd exited with {} (want {code})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("devlogd-test-")
            .tempdir()
            .expect("creating the test's temp dir");
        let env = TestEnv { dir, sas: None };
        for d in [
            env.journal(),
            env.config_home(),
            env.state_home(),
            env.data_home(),
            env.runtime_dir(),
        ] {
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        }
        // XDG_RUNTIME_DIR must be private to its user.
        fs::set_permissions(env.runtime_dir(), fs::Permissions::from_mode(0o700))
            .expect("chmod 0700 the runtime dir");
        env
    }

    /// Hands `sas` to devlogd in `AZURE_STORAGE_SAS_TOKEN`.
    pub fn with_sas(mut self, sas: impl Into<String>) -> TestEnv {
        self.sas = Some(sas.into());
        self
    }

    /// The temp dir everything lives in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// The journal root, `$HOME/.devlog`.
    pub fn journal(&self) -> PathBuf {
        self.home().join(".devlog")
    }

    pub fn config_home(&self) -> PathBuf {
        self.root().join("xdg-config")
    }

    pub fn state_home(&self) -> PathBuf {
        self.root().join("xdg-state")
    }

    pub fn data_home(&self) -> PathBuf {
        self.root().join("xdg-data")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.root().join("xdg-runtime")
    }

    /// `$XDG_CONFIG_HOME/devlog/config.toml`, where devlogd looks by default.
    pub fn config_path(&self) -> PathBuf {
        self.config_home().join("devlog").join("config.toml")
    }

    /// Writes `bytes` to `rel` under the journal root (creating directories); returns the path.
    pub fn write_file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.journal().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        }
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Writes the default config file, mode 0600 (devlogd refuses a looser one holding a
    /// secret); returns its path.
    pub fn write_config(&self, toml_text: &str) -> PathBuf {
        let path = self.config_path();
        fs::create_dir_all(path.parent().expect("config path has a parent"))
            .expect("creating the config dir");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        file.write_all(toml_text.as_bytes())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        // `mode` applies only when the file is created.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 0600 config");
        path
    }

    /// The `devlogd` binary with a clean environment: PATH, HOME, the XDG dirs, NO_COLOR=1, the
    /// SAS if one was given; nothing else (no RUST_LOG, no Azure variables from the caller).
    pub fn devlogd(&self) -> Command {
        self.command(env!("CARGO_BIN_EXE_devlogd"))
    }

    /// The `devlog` journal command, in the same clean environment as [`devlogd`](Self::devlogd).
    pub fn devlog(&self) -> Command {
        self.command(env!("CARGO_BIN_EXE_devlog"))
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_STATE_HOME", self.state_home())
            .env("XDG_DATA_HOME", self.data_home())
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .current_dir(self.home())
            .stdin(Stdio::null());
        if let Some(sas) = &self.sas {
            cmd.env(SAS_ENV, sas);
        }
        cmd
    }

    /// Runs `devlogd ARGS` to completion (at most 120 s, then it is killed and the test fails).
    pub fn run(&self, args: &[&str]) -> RunOutput {
        self.run_with_timeout(args, Duration::from_secs(120))
    }

    pub fn run_with_timeout(&self, args: &[&str], timeout: Duration) -> RunOutput {
        self.run_with_env(&[], args, timeout)
    }

    /// [`run_with_timeout`](Self::run_with_timeout) with `vars` added to the environment.
    pub fn run_with_env(
        &self,
        vars: &[(&str, &str)],
        args: &[&str],
        timeout: Duration,
    ) -> RunOutput {
        let mut child = self
            .devlogd()
            .envs(vars.iter().copied())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning devlogd {args:?}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let out = thread::spawn(move || read_all(out));
        let err = thread::spawn(move || read_all(err));
        let status = poll_until(timeout, || child.try_wait().expect("waiting for devlogd"));
        let status = match status {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
                panic!(
                    "devlogd {args:?} still running after {timeout:?}; killed\n--- stdout ---\n\
                     {stdout}\n--- stderr ---\n{stderr}"
                );
            }
        };
        RunOutput {
            status,
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `devlogd ARGS --json`, checked for `code`; returns the parsed report.
pub fn json(env: &TestEnv, args: &[&str], code: i32) -> (serde_json::Value, RunOutput) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = env.run(&all);
    out.assert_code(code);
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}): {}\n{}",
            out.stdout, out.stderr
        )
    });
    (report, out)
}

/// Every regular file below `root` (hidden ones too), by `/`-separated relative path, with its
/// bytes; directories that cannot be read and files that vanish meanwhile are left out.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if let Ok(bytes) = fs::read(&path)
                && let Ok(rel) = path.strip_prefix(root)
            {
                out.insert(rel.to_string_lossy().into_owned(), bytes);
            }
        }
    }
    out
}
