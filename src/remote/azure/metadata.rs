//! What devlogd stores with a blob as Azure metadata (its writer mark and when it wrote
//! the content), and a blob as the service describes it in any answer: a listing entry, a
//! head, a download's headers.

use super::quoted;
use crate::remote::{RemoteBlob, writer_from_mark, writer_mark};
use std::collections::HashMap;
use time::OffsetDateTime;

/// Blob metadata key holding the writer id (see [`RemoteBlob::writer`]).
const WRITER_METADATA: &str = "devlogdwriter";
/// Blob metadata key holding when devlogd wrote the content (unix ns): finer than
/// Last-Modified's seconds, and kept by a copy into the history area.
const WRITTEN_METADATA: &str = "devlogdwritten";
/// Blob metadata key holding the writer's host name (see [`RemoteBlob::host`]).
const HOST_METADATA: &str = "devlogdhost";
/// Blob metadata key holding what a layer above sealed with the blob ([`RemoteBlob::sealed`]).
const SEALED_METADATA: &str = "devlogdsealed";

/// The metadata a write stores with the blob.
pub(super) fn metadata(
    writer: &str,
    host: &str,
    md5: &[u8; 16],
    name: &str,
    seal: Option<&crate::remote::Seal>,
) -> HashMap<String, String> {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let mut metadata = HashMap::from([
        (WRITER_METADATA.to_string(), writer_mark(writer, md5, name)),
        (WRITTEN_METADATA.to_string(), now.to_string()),
    ]);
    if !host.is_empty() {
        // ASCII only, as a header value must be.
        metadata.insert(HOST_METADATA.to_string(), crate::redact::safe_host(host));
    }
    if let Some(seal) = seal {
        metadata.insert(SEALED_METADATA.to_string(), seal());
    }
    metadata
}

/// The blob `name` from what an answer said of it. Its write time is devlogd's own record,
/// else the service's Last-Modified.
pub(super) fn described(
    name: &str,
    size: u64,
    md5: Option<[u8; 16]>,
    etag: Option<&str>,
    metadata: &HashMap<String, String>,
    last_modified: Option<OffsetDateTime>,
) -> RemoteBlob {
    let service_ns = last_modified.map(|t| t.unix_timestamp_nanos());
    let writer = metadata
        .get(WRITER_METADATA)
        .and_then(|mark| writer_from_mark(mark, md5, name));
    RemoteBlob {
        name: name.to_string(),
        size,
        md5,
        etag: etag.map(quoted).unwrap_or_default(),
        host: writer
            .as_ref()
            .and(metadata.get(HOST_METADATA))
            .map(|h| crate::redact::safe_host(h)),
        writer,
        written_ns: metadata
            .get(WRITTEN_METADATA)
            .and_then(|v| v.parse::<i128>().ok())
            .or(service_ns),
        service_ns,
        corrupt: false,
        sealed: metadata.get(SEALED_METADATA).cloned(),
    }
}
