//! Get Blob, built here and sent on the shared pipeline (as a small put is): the SDK's
//! `BlobClient::download` costs a client per blob and a partitioned-download setup, most
//! of a pull's client CPU for small files. The body streams into the sink, hashed on the
//! way and checked against the blob's stored MD5.

use super::errors::map_error;
use super::metadata::described;
use super::request::{Timing, within};
use super::{AzureRemote, md5_array};
use crate::remote::limit::Outcome;
use crate::remote::{RemoteBlob, RemoteError, Sink, timeouts};
use azure_core::error::CheckSuccessOptions;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::{Context, Method, PipelineStreamOptions, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use md5::{Digest, Md5};
use std::collections::HashMap;

/// Prefix of a header carrying one metadata value.
const METADATA_HEADER: &str = "x-ms-meta-";

impl AzureRemote {
    /// Download `name` whole into `sink`; `Ok(None)` when it does not exist.
    pub(super) async fn get_blob(
        &self,
        name: &str,
        sink: Sink<'_>,
    ) -> Result<Option<RemoteBlob>, RemoteError> {
        // One download under one permit, its body included; its time is mostly transfer,
        // so no latency sample.
        let download = async {
            let mut request = Request::new(self.blob_url(name)?, Method::Get);
            request.insert_header("x-ms-version", self.api_version.clone());
            let options = PipelineStreamOptions {
                check_success: CheckSuccessOptions {
                    success_codes: &[200],
                },
                ..Default::default()
            };
            let context = Context::new();
            let sent = self.pipeline.stream(&context, &mut request, Some(options));
            let response = match within(timeouts::SLOW_ANSWER, sent).await? {
                Err(e) if e.http_status() == Some(StatusCode::NotFound) => return Ok(None),
                answer => answer.map_err(map_error)?,
            };
            let (_, headers, mut body) = response.deconstruct();
            let mut hasher = Md5::new();
            let mut size = 0u64;
            loop {
                let chunk = match within(timeouts::SLOW_ANSWER, body.next()).await? {
                    None => break,
                    Some(chunk) => chunk.map_err(map_error)?,
                };
                hasher.update(&chunk);
                size += chunk.len() as u64;
                sink.write_all(&chunk).map_err(|e| RemoteError::Permanent {
                    message: format!("cannot write {name}: {e}"),
                })?;
            }
            let md5: [u8; 16] = hasher.finalize().into();
            if stored_md5(&headers).is_some_and(|stored| stored != md5) {
                return Err(RemoteError::Permanent {
                    message: format!(
                        "integrity check failed for {name}: the bytes received do not match the blob's Content-MD5"
                    ),
                });
            }
            Ok(Some(described(
                name,
                size,
                Some(md5),
                header(&headers, "etag"),
                &metadata(&headers),
                header(&headers, "last-modified").and_then(crate::remote::parse_http_date),
            )))
        };
        self.under_permit(Timing::Transfer, download, Outcome::of)
            .await
    }
}

fn header<'a>(headers: &'a Headers, name: &'static str) -> Option<&'a str> {
    headers.get_optional_str(&HeaderName::from_static(name))
}

/// The MD5 the blob was stored with: its own (a block blob's, set at commit) or the
/// whole-body Content-MD5 the service sends for a blob put in one request.
fn stored_md5(headers: &Headers) -> Option<[u8; 16]> {
    header(headers, "x-ms-blob-content-md5")
        .or_else(|| header(headers, "content-md5"))
        .and_then(|b64| B64.decode(b64).ok())
        .and_then(md5_array)
}

/// The blob's metadata, from its `x-ms-meta-*` headers.
fn metadata(headers: &Headers) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix(METADATA_HEADER)?;
            Some((key.to_string(), value.as_str().to_string()))
        })
        .collect()
}
