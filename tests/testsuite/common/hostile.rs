//! A fake, hostile Blob service for the integration tests: plain HTTP/1.1 on 127.0.0.1 (keep-alive,
//! Content-Length and chunked bodies), one thread per connection. A test's hook sees every request
//! and decides: forward it to Azurite (relayed byte for byte, on an upstream connection of the
//! client connection's own), answer it itself (a crafted listing, a blob that does not match its
//! Content-MD5, an error), or rewrite what Azurite answered. Standalone, with no Azurite behind
//! it, the hook answers everything. Every request is recorded for assertions. Credentials are
//! never checked: the fake plays a remote that lies, not one that guards.
//!
//! A reply is sent as the hook built it, with two conveniences: `Content-Length` is added when
//! the hook set neither it nor `Transfer-Encoding`, and a `Content-Length` the hook set that
//! does not match the body (a lying length) is sent as is, after which the connection is closed.
//! A huge body is sent without being held: [`Resp::repeat_body`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::ACCOUNT;

/// Bound on one message head (request or upstream response), so a broken peer cannot grow it.
const MAX_HEAD: usize = 256 * 1024;
/// Marks a [`Resp::repeat_body`] answer; never sent.
const REPEAT_HEADER: &str = "x-hostile-repeat-body";
/// The service version the fake claims in its answers.
const MS_VERSION: &str = "2025-11-05";

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Raw, percent-encoding kept: `/devstoreaccount1/CONTAINER/NAME`.
    pub path: String,
    /// Raw, without the `?`.
    pub query: String,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// De-chunked.
    pub body: Vec<u8>,
}

impl Req {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded blob name after `/ACCOUNT/CONTAINER/`; `None` for account and container
    /// requests.
    pub fn blob_name(&self) -> Option<String> {
        let mut parts = self.path.strip_prefix('/')?.splitn(3, '/');
        let (_account, _container) = (parts.next()?, parts.next()?);
        let name = parts.next().filter(|n| !n.is_empty())?;
        Some(percent_decode_str(name).decode_utf8_lossy().into_owned())
    }

    /// The container the request is for, if any.
    pub fn container(&self) -> Option<String> {
        let mut parts = self.path.strip_prefix('/')?.split('/');
        let _account = parts.next()?;
        let container = parts.next().filter(|c| !c.is_empty())?;
        Some(
            percent_decode_str(container)
                .decode_utf8_lossy()
                .into_owned(),
        )
    }

    /// The decoded value of the first `key=` in the query (`Some("")` for a bare `key`).
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k) == key).then(|| decode(v))
            })
    }

    /// List Blobs (`GET …?restype=container&comp=list`).
    pub fn is_list(&self) -> bool {
        self.method == "GET" && self.query_param("comp").as_deref() == Some("list")
    }

    /// Get Blob: a GET of a blob with no `comp`.
    pub fn is_get_blob(&self) -> bool {
        self.method == "GET" && self.blob_name().is_some() && self.query_param("comp").is_none()
    }

    /// Put Blob: a PUT of a blob with no `comp` (not a block, not a block list).
    pub fn is_put_blob(&self) -> bool {
        self.method == "PUT" && self.blob_name().is_some() && self.query_param("comp").is_none()
    }

    /// Put Block (`comp=block`).
    pub fn is_put_block(&self) -> bool {
        self.method == "PUT" && self.query_param("comp").as_deref() == Some("block")
    }

    /// Get Blob Properties.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// An answer: sent as built (see the module doc for `Content-Length`).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// A bare answer: no headers, no body.
    pub fn new(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Sets header `k`, replacing every header of that name (case-insensitive).
    pub fn header(mut self, k: &str, v: &str) -> Resp {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// Removes every header named `k` (case-insensitive).
    pub fn without_header(mut self, k: &str) -> Resp {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        self
    }

    /// The first header of that name (case-insensitive).
    pub fn get_header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Resp {
        self.body = b.into();
        self
    }

    /// Sends the body `times` over, streamed (a huge answer without holding it in memory);
    /// `Content-Length` is counted for the whole unless the hook set one.
    pub fn repeat_body(self, times: u64) -> Resp {
        self.header(REPEAT_HEADER, &times.to_string())
    }

    /// The usual headers of every service answer.
    fn service(status: u16) -> Resp {
        Resp::new(status)
            .header("Server", "Hostile-Blob/1.0")
            .header("x-ms-request-id", &request_id())
            .header("x-ms-version", MS_VERSION)
            .header("Date", &rfc1123_now())
    }

    /// A 200 Get Blob answer for `bytes`: a block blob with an ETag, Last-Modified and, if
    /// given, `Content-MD5` (which may be a lie: the fake sends what it is told).
    pub fn blob(bytes: &[u8], content_md5: Option<[u8; 16]>) -> Resp {
        let mut resp = Resp::service(200)
            .header("Content-Type", "application/octet-stream")
            .header("ETag", &etag_of(bytes))
            .header("Last-Modified", &rfc1123_now())
            .header("Accept-Ranges", "bytes")
            .header("x-ms-blob-type", "BlockBlob")
            .header("x-ms-creation-time", &rfc1123_now())
            .header("x-ms-lease-state", "available")
            .header("x-ms-lease-status", "unlocked")
            .header("x-ms-server-encrypted", "true")
            .body(bytes);
        if let Some(md5) = content_md5 {
            resp = resp.header("Content-MD5", &BASE64.encode(md5));
        }
        resp
    }

    /// An Azure error: the XML body with `code` and `message`, and `x-ms-error-code`.
    pub fn error(status: u16, code: &str, message: &str) -> Resp {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            xml_escape(code),
            xml_escape(message)
        );
        Resp::service(status)
            .header("x-ms-error-code", code)
            .header("Content-Type", "application/xml")
            .body(body)
    }

    /// A 200 List Blobs page holding `blobs` in the given order, with no NextMarker (the last
    /// page). Names XML cannot carry are sent percent-encoded with `Encoded="true"`, as Azure
    /// does.
    pub fn list(blobs: &[ListedBlob]) -> Resp {
        Resp::list_page(blobs, None)
    }

    /// A List Blobs page; `next_marker` asks the client for another page (an endless listing
    /// is one that always names one).
    pub fn list_page(blobs: &[ListedBlob], next_marker: Option<&str>) -> Resp {
        let mut xml =
            String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs>");
        for b in blobs {
            xml.push_str("<Blob>");
            xml.push_str(&name_element(&b.name));
            xml.push_str("<Properties>");
            xml.push_str(&format!(
                "<Creation-Time>{lm}</Creation-Time><Last-Modified>{lm}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length><Content-Type>application/octet-stream</Content-Type>",
                xml_escape(&b.etag),
                b.size,
                lm = xml_escape(&b.last_modified),
            ));
            if let Some(md5) = b.md5 {
                xml.push_str(&format!(
                    "<Content-MD5>{}</Content-MD5>",
                    BASE64.encode(md5)
                ));
            }
            xml.push_str(
                "<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties>",
            );
            if !b.metadata.is_empty() {
                xml.push_str("<Metadata>");
                for (k, v) in &b.metadata {
                    xml.push_str(&format!("<{k}>{}</{k}>", xml_escape(v)));
                }
                xml.push_str("</Metadata>");
            }
            xml.push_str("</Blob>");
        }
        xml.push_str("</Blobs>");
        if let Some(marker) = next_marker {
            xml.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(marker)));
        }
        xml.push_str("</EnumerationResults>");
        Resp::service(200)
            .header("Content-Type", "application/xml")
            .body(xml)
    }
}

/// One `<Blob>` of a crafted listing. `metadata` names must be valid XML names (Azure's are C#
/// identifiers); values are escaped.
#[derive(Debug, Clone)]
pub struct ListedBlob {
    pub name: String,
    pub size: u64,
    pub md5: Option<[u8; 16]>,
    pub etag: String,
    /// RFC 1123, e.g. `Thu, 01 Jan 2026 00:00:00 GMT`.
    pub last_modified: String,
    pub metadata: Vec<(String, String)>,
}

impl ListedBlob {
    /// A truthful entry for `bytes` named `name`: its size, MD5 and an ETag derived from it,
    /// modified now, no metadata. Change fields to make it lie.
    pub fn of(name: &str, bytes: &[u8]) -> ListedBlob {
        ListedBlob {
            name: name.to_string(),
            size: bytes.len() as u64,
            md5: Some(md5_of(bytes)),
            etag: etag_of(bytes),
            last_modified: rfc1123_now(),
            metadata: Vec::new(),
        }
    }
}

/// The MD5 of `bytes`, as [`Resp::blob`] and [`ListedBlob`] take it.
pub fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// What the hook does with one request.
pub enum Action {
    /// Relay it to Azurite and its answer back, byte for byte (404 when standalone).
    Forward,
    /// Answer it with this, Azurite never asked.
    Reply(Resp),
    /// Relay it, and answer with what this makes of Azurite's answer (body de-chunked, no
    /// `Content-Length` but on a HEAD; 404 when standalone).
    Rewrite(Box<dyn FnOnce(Resp) -> Resp + Send>),
}

type Hook = dyn Fn(&Req) -> Action + Send + Sync;

struct Shared {
    hook: Box<Hook>,
    upstream: Option<u16>,
    log: Mutex<Vec<Req>>,
}

/// A running fake service on 127.0.0.1 (it lives as long as the test process).
pub struct Hostile {
    port: u16,
    shared: Arc<Shared>,
}

impl Hostile {
    /// A proxy in front of an Azurite port: `hook` sees each request and forwards it, answers it
    /// itself, or rewrites Azurite's answer (Rewrite gets the upstream response, body de-chunked).
    pub fn proxy(
        upstream_port: u16,
        hook: impl Fn(&Req) -> Action + Send + Sync + 'static,
    ) -> Hostile {
        Hostile::start(Some(upstream_port), Box::new(hook))
    }

    /// No upstream: `hook` answers everything (Forward/Rewrite answer 404).
    pub fn standalone(hook: impl Fn(&Req) -> Action + Send + Sync + 'static) -> Hostile {
        Hostile::start(None, Box::new(hook))
    }

    fn start(upstream: Option<u16>, hook: Box<Hook>) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the hostile service");
        let port = listener
            .local_addr()
            .expect("the hostile service's address")
            .port();
        let shared = Arc::new(Shared {
            hook,
            upstream,
            log: Mutex::new(Vec::new()),
        });
        let for_thread = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = for_thread.clone();
                thread::spawn(move || {
                    let _ = serve(client, &shared);
                });
            }
        });
        Hostile { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`
    pub fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1/CONTAINER`, what devlogd's `[remote] url` takes.
    pub fn container_url(&self, container: &str) -> String {
        format!("{}/{container}", self.account_url())
    }

    /// Every request seen so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Req> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// An upstream connection and its reader; `used` once an exchange went through it (a failure
/// on a used connection may be Azurite closing an idle keep-alive: worth one fresh try).
struct Upstream {
    to: TcpStream,
    from: BufReader<TcpStream>,
    used: bool,
}

impl Upstream {
    fn connect(port: u16) -> io::Result<Upstream> {
        let to = TcpStream::connect(("127.0.0.1", port))?;
        let from = BufReader::new(to.try_clone()?);
        Ok(Upstream {
            to,
            from,
            used: false,
        })
    }

    fn exchange(&mut self, raw: &[u8], head_only: bool) -> io::Result<Message> {
        self.to.write_all(raw)?;
        let answer = read_message(&mut self.from, head_only)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed"))?;
        self.used = true;
        Ok(answer)
    }
}

/// One client connection, request by request, until the client closes it.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut upstream: Option<Upstream> = None;
    while let Some(msg) = read_message(&mut reader, false)? {
        let req = msg.to_req();
        shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.clone());
        let head_only = req.method == "HEAD";
        let client_closes = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let action = (shared.hook)(&req);
        let close = match (action, shared.upstream) {
            (Action::Reply(resp), _) => send(&mut client, &resp, head_only)?,
            (Action::Forward, Some(port)) => {
                let answer = relay(&mut upstream, port, &msg.raw, head_only)?;
                client.write_all(&answer.raw)?;
                client.flush()?;
                answer.closes
            }
            (Action::Rewrite(f), Some(port)) => {
                let answer = relay(&mut upstream, port, &msg.raw, head_only)?;
                send(&mut client, &f(answer.to_resp(head_only)), head_only)?
            }
            (Action::Forward | Action::Rewrite(_), None) => send(
                &mut client,
                &Resp::error(
                    404,
                    "ResourceNotFound",
                    "The specified resource does not exist.",
                ),
                head_only,
            )?,
        };
        if close || client_closes {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

/// Sends a request upstream, reconnecting once if a reused connection was closed under it.
fn relay(
    upstream: &mut Option<Upstream>,
    port: u16,
    raw: &[u8],
    head_only: bool,
) -> io::Result<Message> {
    if let Some(up) = upstream.as_mut() {
        match up.exchange(raw, head_only) {
            Ok(answer) => return Ok(answer),
            Err(e) if !up.used => return Err(e),
            Err(_) => {}
        }
    }
    let mut fresh = Upstream::connect(port)?;
    let answer = fresh.exchange(raw, head_only)?;
    *upstream = Some(fresh);
    Ok(answer)
}

/// Sends an answer; whether the connection must close after it (its body did not match the
/// `Content-Length` the hook set).
fn send(client: &mut TcpStream, resp: &Resp, head_only: bool) -> io::Result<bool> {
    let no_body_status = matches!(resp.status, 100..=199 | 204 | 304);
    let bodyless = head_only || no_body_status;
    let repeat: u64 = resp
        .get_header(REPEAT_HEADER)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let body_len = resp.body.len() as u64 * repeat;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).into_bytes();
    for (k, v) in &resp.headers {
        if !k.eq_ignore_ascii_case(REPEAT_HEADER) {
            head.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    let set_length = resp.get_header("content-length");
    let chunked = resp.get_header("transfer-encoding").is_some();
    let mut close = false;
    match set_length {
        None if !chunked && !no_body_status => {
            head.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
        }
        Some(len) if !bodyless => close = len.trim() != body_len.to_string(),
        _ => {}
    }
    head.extend_from_slice(b"\r\n");
    if bodyless || repeat == 1 {
        if !bodyless {
            head.extend_from_slice(&resp.body);
        }
        client.write_all(&head)?;
    } else {
        // Streamed, so a huge body never sits in memory.
        client.write_all(&head)?;
        for _ in 0..repeat {
            client.write_all(&resp.body)?;
        }
    }
    client.flush()?;
    Ok(close)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// One HTTP/1.1 message as received.
struct Message {
    /// The request or status line, without CRLF.
    start: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    /// Head and body exactly as they came (for relaying).
    raw: Vec<u8>,
    /// The body, de-chunked.
    body: Vec<u8>,
    /// The body ran to the end of the connection (no length, not chunked).
    closes: bool,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn to_req(&self) -> Req {
        let mut parts = self.start.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Req {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }

    /// An upstream answer as a [`Resp`] for a rewrite: framing headers dropped (kept on a HEAD,
    /// where `Content-Length` describes the blob, not this message).
    fn to_resp(&self, head_only: bool) -> Resp {
        let status = self
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(502);
        let headers = self
            .headers
            .iter()
            .filter(|(k, _)| {
                k != "transfer-encoding"
                    && (head_only || k != "content-length")
                    && k != "connection"
            })
            .cloned()
            .collect();
        Resp {
            status,
            headers,
            body: self.body.clone(),
        }
    }
}

/// Reads one line (with its CRLF) into `raw`, returning it without the line end; `None` at a
/// clean end of the connection.
fn read_line(r: &mut impl BufRead, raw: &mut Vec<u8>) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if r.by_ref()
        .take(MAX_HEAD as u64)
        .read_until(b'\n', &mut line)?
        == 0
    {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "line too long or cut",
        ));
    }
    raw.extend_from_slice(&line);
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// One message: head, then body by Content-Length, chunked, or (a response with neither) to the
/// end of the connection. `None` at a clean end before a message.
fn read_message(r: &mut impl BufRead, head_only: bool) -> io::Result<Option<Message>> {
    let mut raw = Vec::new();
    let Some(start) = read_line(r, &mut raw)? else {
        return Ok(None);
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut raw)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in a head")
        })?;
        if line.is_empty() {
            break;
        }
        if raw.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut msg = Message {
        start,
        headers,
        raw,
        body: Vec::new(),
        closes: false,
    };
    let is_response = msg.start.starts_with("HTTP/");
    let status = msg.start.split(' ').nth(1).unwrap_or("");
    if head_only || (is_response && (matches!(status, "204" | "304") || status.starts_with('1'))) {
        return Ok(Some(msg));
    }
    if msg
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let size_line = read_line(r, &mut msg.raw)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in a chunk")
            })?;
            let hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("chunk size: {e}"))
            })?;
            if size == 0 {
                // Trailers, up to the blank line.
                while let Some(line) = read_line(r, &mut msg.raw)? {
                    if line.is_empty() {
                        break;
                    }
                }
                return Ok(Some(msg));
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            msg.raw.extend_from_slice(&chunk);
            chunk.truncate(size);
            msg.body.extend_from_slice(&chunk);
        }
    }
    match msg.header("content-length").map(str::parse::<u64>) {
        Some(Ok(len)) => {
            let mut body = Vec::new();
            r.by_ref().take(len).read_to_end(&mut body)?;
            if body.len() as u64 != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in a body",
                ));
            }
            msg.raw.extend_from_slice(&body);
            msg.body = body;
        }
        Some(Err(e)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("Content-Length: {e}"),
            ));
        }
        None if is_response => {
            r.read_to_end(&mut msg.body)?;
            msg.raw.extend_from_slice(&msg.body);
            msg.closes = true;
        }
        None => {}
    }
    Ok(Some(msg))
}

/// `<Name>` of a listing: escaped text, or percent-encoded with `Encoded="true"` when it holds a
/// character XML 1.0 cannot carry.
fn name_element(name: &str) -> String {
    let xml_safe = name.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
    });
    if xml_safe {
        format!("<Name>{}</Name>", xml_escape(name))
    } else {
        format!(
            "<Name Encoded=\"true\">{}</Name>",
            utf8_percent_encode(name, NON_ALPHANUMERIC)
        )
    }
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// An ETag in Azure's shape (`"0x…"`), derived from the content.
fn etag_of(bytes: &[u8]) -> String {
    let md5 = md5_of(bytes);
    let hex: String = md5[..8].iter().map(|b| format!("{b:02X}")).collect();
    format!("\"0x{hex}\"")
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-0000-0000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Now as an HTTP date (`Thu, 01 Jan 2026 00:00:00 GMT`).
pub fn rfc1123_now() -> String {
    rfc1123(time::OffsetDateTime::now_utc())
}

/// `at` as an HTTP date, for [`ListedBlob::last_modified`] and `Last-Modified`.
pub fn rfc1123(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| "Thu, 01 Jan 2026 00:00:00 GMT".to_string())
}
