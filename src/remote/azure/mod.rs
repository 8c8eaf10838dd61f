//! Azure Blob Storage through the official SDK (`azure_storage_blob`): the [`Remote`] for
//! it, with reads, listings, history copies and deletes here, and beside it the put paths
//! (`put.rs`), the one way a request is sent (`request.rs`), the error mapping
//! (`errors.rs`), the per-try policy (`policy.rs`), the probe, and the URL, credentials, SAS
//! and Shared Key signing a remote is built from.
//!
//! One HTTP transport (one connection pool) is shared by every request. The SDK's own
//! retry policy is switched off: the push pipeline decides about retries from the
//! [`RemoteError`] kind `errors.rs` assigns (rclone's `shouldRetry`). Every message that
//! leaves this module has passed through [`crate::redact::scrub`].

pub mod credential;
mod errors;
mod get;
pub mod location;
mod metadata;
mod policy;
mod probe;
mod put;
mod request;
pub mod sas;
pub mod shared_key;

pub use errors::map_error;

use crate::redact::scrub;
use crate::remote::concurrency::{AUTO_MAX, Bound};
use crate::remote::limit::Limiter;
use crate::remote::{
    Created, Features, Precondition, Put, PutOutcome, Remote, RemoteBlob, RemoteError, Sink,
    check_name, history_name, timeouts,
};
use async_trait::async_trait;
use azure_core::error::{CheckSuccessOptions, ErrorKind};
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{
    ClientOptions, Context, Etag, HttpClientOptions, Method, Pipeline, PipelineSendOptions,
    Request, RetryOptions, StatusCode, Transport, Url, new_http_client,
};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientStartCopyFromUrlOptions, BlobClientStartCopyFromUrlResultHeaders,
    BlobContainerClientListBlobsOptions, CopyStatus, ListBlobsIncludeItem,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use credential::Credential;
use errors::{
    bounded, error_chain, is_container_not_found, is_destination_taken, is_permission_mismatch,
    permanent_url,
};
use futures::TryStreamExt;
use location::AzureLocation;
use metadata::described;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use policy::RequestPolicy;
use request::{Timing, within};
use shared_key::SharedKey;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Everything but RFC 3986 unreserved characters is encoded inside a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Requests that heard "container missing" within this of its creation were answered by
/// it; later ones mean it was deleted since.
const RECREATE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

pub struct AzureRemote {
    location: AzureLocation,
    credential: Credential,
    /// `https://host/container` (no query).
    container_url: String,
    blob_options: BlobClientOptions,
    container: BlobContainerClient,
    /// The pipeline a small file's Put Blob goes through, built once (the SDK's
    /// `BlobClient` builds one per blob, and a first push makes thousands).
    pipeline: Pipeline,
    /// The service version requests ask for (the SDK's own).
    api_version: String,
    /// When this process last created the container (or found it there): the uploads that
    /// all heard "missing" at once create it once. Later, it may have been deleted again.
    container_created: Mutex<Option<std::time::Instant>>,
    /// The container we created, until the push reports it ([`Features::created`]).
    created: Created,
    /// Every request to the service goes through it (one attempt per permit).
    limiter: Arc<Limiter>,
    /// What the SAS in use says about itself, read once ([`Features::sas`]).
    sas: Option<sas::SasInfo>,
}

impl AzureRemote {
    pub fn new(location: &AzureLocation, credential: Credential) -> Result<Self, RemoteError> {
        crate::remote::tls::install_crypto_provider();
        let shared_key = match &credential {
            Credential::SharedKey { account, key, .. } => Some(
                SharedKey::new(account, key.expose()).map_err(|e| RemoteError::Permanent {
                    message: e.to_string(),
                })?,
            ),
            _ => None,
        };
        let per_try_policies: Vec<Arc<dyn Policy>> = vec![Arc::new(RequestPolicy { shared_key })];
        let client_options = ClientOptions {
            retry: RetryOptions::none(),
            transport: Some(Transport::new(new_http_client(Some(HttpClientOptions {
                automatic_decompression: false,
            })))),
            per_try_policies,
            ..Default::default()
        };
        let blob_options = BlobClientOptions {
            client_options: client_options.clone(),
            ..Default::default()
        };
        // What `BlobClient::new` builds for every blob: the same options and policies, and
        // the bearer token for Entra ID (the container client below refuses plain http).
        let per_retry: Vec<Arc<dyn Policy>> = match token_credential(&credential) {
            Some(token) => vec![Arc::new(BearerTokenAuthorizationPolicy::new(
                token,
                vec!["https://storage.azure.com/.default"],
            ))],
            None => Vec::new(),
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            client_options.clone(),
            Vec::new(),
            per_retry,
            None,
        );
        let api_version = blob_options.version.clone();
        let container_options = BlobContainerClientOptions {
            client_options,
            ..Default::default()
        };
        let container_url = location.container_url();
        let container = BlobContainerClient::new(
            auth_url(&credential, &container_url)?,
            token_credential(&credential),
            Some(container_options),
        )
        .map_err(map_error)?;
        let sas = match &credential {
            Credential::Sas { token, .. } => Some(sas::SasInfo::parse(token.expose())),
            _ => None,
        };
        Ok(AzureRemote {
            location: location.clone(),
            sas,
            credential,
            container_url,
            blob_options,
            container,
            pipeline,
            api_version,
            container_created: Mutex::new(None),
            created: Created::default(),
            limiter: Limiter::new(Bound::Auto { max: AUTO_MAX }),
        })
    }

    /// The same remote with requests in flight bounded by `bound` (`sync.concurrency`).
    pub fn with_concurrency(mut self, bound: Bound) -> Self {
        self.limiter = Limiter::new(bound);
        self
    }

    /// The blob's full name in the container (prefix included).
    fn full_name(&self, name: &str) -> String {
        if self.location.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.location.prefix, name)
        }
    }

    /// The URL of blob `name`; a name with an empty, `.` or `..` segment is refused here, so
    /// no request (get, head, put, copy, delete) is ever sent for one.
    fn blob_url(&self, name: &str) -> Result<Url, RemoteError> {
        check_name(name)?;
        let encoded: Vec<String> = self
            .full_name(name)
            .split('/')
            .map(|seg| utf8_percent_encode(seg, SEGMENT).to_string())
            .collect();
        self.with_auth(&format!("{}/{}", self.container_url, encoded.join("/")))
    }

    fn with_auth(&self, base: &str) -> Result<Url, RemoteError> {
        auth_url(&self.credential, base)
    }

    fn blob_client(&self, name: &str) -> Result<BlobClient, RemoteError> {
        BlobClient::new(
            self.blob_url(name)?,
            token_credential(&self.credential),
            Some(self.blob_options.clone()),
        )
        .map_err(map_error)
    }

    /// Create the container after the service said it is missing: once for the requests
    /// that heard so together, and again if it is deleted later (a daemon runs for months).
    async fn create_container(&self) -> Result<(), RemoteError> {
        let mut created = self.container_created.lock().await;
        if created.is_some_and(|at| at.elapsed() < RECREATE_AFTER) {
            return Ok(());
        }
        let answer = self
            .send(
                timeouts::ANSWER,
                Timing::Sample,
                self.container.create(None),
            )
            .await?;
        match answer {
            Ok(_) => {
                tracing::info!(container = %self.container_url, "created the container");
                self.created.note(&self.location.container);
            }
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => {}
            Err(e) => {
                let err = map_error(e);
                return Err(match err {
                    RemoteError::Auth { message } => RemoteError::Auth {
                        message: format!(
                            "the container {} does not exist and the credentials may not create it ({message}): create it, or use a SAS that allows creating containers",
                            self.container_url
                        ),
                    },
                    other => other,
                });
            }
        }
        *created = Some(std::time::Instant::now());
        Ok(())
    }

    /// Every blob whose name starts with `under` (below the prefix); names are given
    /// relative to the prefix.
    async fn list_under(&self, under: &str) -> Result<Vec<RemoteBlob>, RemoteError> {
        self.list_under_sending(under, None).await
    }

    /// `list_under`, sending the current view's blobs to `early` every [`EARLY_BATCH`].
    async fn list_under_sending(
        &self,
        under: &str,
        early: Option<&super::ListingSender>,
    ) -> Result<Vec<RemoteBlob>, RemoteError> {
        let mut options = BlobContainerClientListBlobsOptions {
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let strip = if self.location.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.location.prefix)
        };
        let full_under = format!("{strip}{under}");
        if !full_under.is_empty() {
            options.prefix = Some(full_under);
        }
        let mut pager = self
            .container
            .list_blobs(Some(options))
            .map_err(map_error)?;
        let mut blobs = Vec::new();
        let mut sent = 0;
        loop {
            // Pages are not limited: a listing is one request at a time.
            let item = match within(timeouts::LIST_PAGE, pager.try_next()).await? {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) if is_container_not_found(&e) => return Ok(Vec::new()),
                // A page that is no listing (bad XML): one bounded line, never the body.
                Err(e) if matches!(e.kind(), ErrorKind::DataConversion) => {
                    return Err(RemoteError::Permanent {
                        message: format!(
                            "the service sent a listing page devlogd cannot read ({})",
                            bounded(&scrub(&error_chain(&e)), 120)
                        ),
                    });
                }
                Err(e) => return Err(map_error(e)),
            };
            let Some(full) = item.name else { continue };
            let Some(name) = full.strip_prefix(&strip) else {
                continue;
            };
            let props = item.properties.unwrap_or_default();
            let md5 = props.content_md5.and_then(md5_array);
            let metadata = item.metadata.and_then(|m| m.values).unwrap_or_default();
            blobs.push(described(
                name,
                props.content_length.unwrap_or(0),
                md5,
                props.etag.as_ref().map(|e| e.as_ref()),
                &metadata,
                props.last_modified,
            ));
            if let Some(early) = early
                && blobs.len() - sent >= EARLY_BATCH
            {
                send_current(early, &blobs[sent..]);
                sent = blobs.len();
            }
        }
        if let Some(early) = early {
            send_current(early, &blobs[sent..]);
        }
        Ok(blobs)
    }
}

#[async_trait]
impl Remote for AzureRemote {
    fn describe(&self) -> String {
        self.location.to_string()
    }

    fn credential_source(&self) -> String {
        self.credential.source().to_string()
    }

    async fn probe(&self) -> Result<crate::remote::Probe, RemoteError> {
        probe::probe(&self.container, &self.location.prefix).await
    }

    async fn service_now(&self) -> Result<Option<time::OffsetDateTime>, RemoteError> {
        // One List Blobs of at most one name (what a probe sends); any answer has a `Date`.
        let mut url = self.with_auth(&self.container_url)?;
        url.query_pairs_mut()
            .append_pair("restype", "container")
            .append_pair("comp", "list")
            .append_pair("maxresults", "1");
        let mut request = Request::new(url, Method::Get);
        request.insert_header("x-ms-version", self.api_version.clone());
        let options = PipelineSendOptions {
            check_success: CheckSuccessOptions {
                success_codes: &[200, 404],
            },
            ..Default::default()
        };
        let context = Context::new();
        let sent = self.pipeline.send(&context, &mut request, Some(options));
        let answer = self
            .send(timeouts::ANSWER, Timing::Sample, sent)
            .await?
            .map_err(map_error)?;
        Ok(answer
            .headers()
            .get_optional_str(&HeaderName::from_static("date"))
            .and_then(crate::remote::parse_http_date))
    }

    fn features(&self) -> Features<'_> {
        Features {
            limiter: Some(&self.limiter),
            sas: self.sas.as_ref(),
            created: Some(&self.created),
        }
    }

    fn name_prefix(&self) -> String {
        self.location.prefix.clone()
    }

    async fn put_observed(&self, put: Put<'_>) -> Result<PutOutcome, RemoteError> {
        self.put_content(put).await
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        let client = self.blob_client(name)?;
        let response = match self
            .send(
                timeouts::ANSWER,
                Timing::Sample,
                client.get_properties(None),
            )
            .await?
        {
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => return Ok(None),
            answer => answer.map_err(map_error)?,
        };
        let md5 = response.content_md5().ok().flatten().and_then(md5_array);
        let metadata = response.metadata().unwrap_or_default();
        let etag = response.etag().ok().flatten();
        Ok(Some(described(
            name,
            response.content_length().ok().flatten().unwrap_or(0),
            md5,
            etag.as_ref().map(|e| e.as_ref()),
            &metadata,
            response.last_modified().ok().flatten(),
        )))
    }

    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        let mut blobs = self.list_under("").await?;
        blobs.retain(|b| !history_name::is_history(&b.name));
        Ok(blobs)
    }

    async fn list_sending(
        &self,
        early: &super::ListingSender,
    ) -> Result<Vec<RemoteBlob>, RemoteError> {
        let mut blobs = self.list_under_sending("", Some(early)).await?;
        blobs.retain(|b| !history_name::is_history(&b.name));
        Ok(blobs)
    }

    async fn list_history(&self, path: Option<&str>) -> Result<Vec<RemoteBlob>, RemoteError> {
        let under = match path {
            Some(p) => {
                check_name(p)?;
                format!("{}/{p}/", history_name::HISTORY_DIR)
            }
            None => format!("{}/", history_name::HISTORY_DIR),
        };
        self.list_under(&under).await
    }

    async fn get(&self, name: &str, sink: Sink<'_>) -> Result<Option<RemoteBlob>, RemoteError> {
        self.get_blob(name, sink).await
    }

    async fn preserve(&self, name: &str, etag: &str, kept_as: &str) -> Result<(), RemoteError> {
        // Copy Blob, server-side, of exactly the version we are about to replace
        // (x-ms-source-if-match); the copy keeps the source's metadata (writer mark and
        // write time). Within one account the copy completes before the response. The
        // history name derives from the version, and the copy only creates (If-None-Match:
        // *): a retry finds its copy there and makes no second one.
        let source = self.blob_url(name)?.to_string();
        let client = self.blob_client(kept_as)?;
        let options = BlobClientStartCopyFromUrlOptions {
            source_if_match: Some(Etag::from(etag.to_string())),
            if_none_match: Some(Etag::from("*")),
            ..Default::default()
        };
        let copy = client.start_copy_from_url(source, Some(options));
        let response = match self
            .send(timeouts::SLOW_ANSWER, Timing::Sample, copy)
            .await?
        {
            // The source is gone: it is not the version we were to keep.
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
                return Err(if is_container_not_found(&e) {
                    map_error(e)
                } else {
                    RemoteError::Conflict
                });
            }
            // The destination exists: this version was kept already (a retry), unless a
            // blob with other content took the name.
            Err(e) if is_destination_taken(&e) => {
                return self.check_kept(name, etag, kept_as).await;
            }
            answer => answer.map_err(map_error)?,
        };
        let status = response.copy_status().ok().flatten();
        if status.is_some_and(|s| s != CopyStatus::Success) {
            // Pending (a copy the service runs in the background): wait for it, so the
            // version is complete before the original is replaced.
            self.wait_for_copy(kept_as).await?;
        }
        Ok(())
    }

    async fn delete(&self, name: &str, precondition: &Precondition) -> Result<(), RemoteError> {
        let client = self.blob_client(name)?;
        let mut options = BlobClientDeleteOptions::default();
        match precondition {
            Precondition::IfMatch(etag) => options.if_match = Some(Etag::from(etag.clone())),
            Precondition::IfAbsent => options.if_none_match = Some(Etag::from("*")),
            Precondition::None => {}
        }
        let delete = client.delete(Some(options));
        match self.send(timeouts::ANSWER, Timing::Sample, delete).await? {
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(()),
            Err(e) if is_permission_mismatch(&e) => Err(RemoteError::Auth {
                message: format!(
                    "the SAS lacks delete permission (sp={}): deletes and history pruning need d (HTTP 403 AuthorizationPermissionMismatch)",
                    self.sas
                        .as_ref()
                        .and_then(|s| s.permissions.as_deref())
                        .unwrap_or("?")
                ),
            }),
            Err(e) => match map_error(e) {
                // Some services answer a conditional delete of a missing blob with 412.
                RemoteError::Conflict if self.head(name).await?.is_none() => Ok(()),
                other => Err(other),
            },
            Ok(_) => Ok(()),
        }
    }
}

impl AzureRemote {
    /// The SAS token in use, as far as it can be read without the service.
    /// `history_name` exists: it holds the version `etag` of `name` if its content is that
    /// version's (a name derived from an ETag can be taken by a co-writer's blob, and then
    /// the version is not kept: an error, so nothing replaces it).
    async fn check_kept(
        &self,
        name: &str,
        etag: &str,
        history_name: &str,
    ) -> Result<(), RemoteError> {
        let kept = self.head(history_name).await?;
        let source = self.head(name).await?;
        match (kept, source) {
            (Some(kept), Some(source))
                if source.etag == quoted(etag) && kept.md5.is_some() && kept.md5 == source.md5 =>
            {
                Ok(())
            }
            (_, Some(source)) if source.etag != quoted(etag) => Err(RemoteError::Conflict),
            (_, None) => Err(RemoteError::Conflict),
            _ => Err(RemoteError::Permanent {
                message: format!(
                    "cannot keep the replaced version of {}: its history name {} holds other content",
                    crate::redact::printable(name),
                    crate::redact::printable(history_name)
                ),
            }),
        }
    }

    /// Poll a pending copy until it ends; a failed or aborted copy is an error.
    async fn wait_for_copy(&self, name: &str) -> Result<(), RemoteError> {
        let client = self.blob_client(name)?;
        let deadline = tokio::time::Instant::now() + 5 * timeouts::SLOW_ANSWER;
        let mut delay = Duration::from_millis(50);
        loop {
            let response = within(timeouts::ANSWER, client.get_properties(None))
                .await?
                .map_err(map_error)?;
            match response.copy_status().ok().flatten() {
                None | Some(CopyStatus::Success) => return Ok(()),
                Some(CopyStatus::Pending) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Some(other) => {
                    return Err(RemoteError::Transient {
                        message: format!("keeping the replaced version of {name}: copy {other:?}"),
                        retry_after: None,
                    });
                }
            }
        }
    }
}

/// `base` with the credential's query string (a SAS) appended; other credentials sign or
/// authorize each request instead.
fn auth_url(credential: &Credential, base: &str) -> Result<Url, RemoteError> {
    match credential {
        Credential::Sas { token, .. } => {
            Url::parse(&format!("{base}?{}", token.expose())).map_err(permanent_url)
        }
        _ => Url::parse(base).map_err(permanent_url),
    }
}

/// The bearer-token credential for the SDK's own auth policy (Entra ID only).
fn token_credential(
    credential: &Credential,
) -> Option<Arc<dyn azure_core::credentials::TokenCredential>> {
    match credential {
        Credential::Entra { credential, .. } => Some(credential.clone()),
        _ => None,
    }
}

/// ETags in one form, quoted as in HTTP headers: List Blobs gives them bare, headers
/// quoted, and the index compares them as strings.
fn quoted(etag: &str) -> String {
    let bare = etag.trim_matches('"');
    format!("\"{bare}\"")
}

fn md5_array(v: Vec<u8>) -> Option<[u8; 16]> {
    v.try_into().ok()
}

/// Blobs per early batch of a listing: a page of 5,000 goes out in a few, as it arrives.
const EARLY_BATCH: usize = 500;

/// Send the current view's blobs among `blobs` (the history area is no part of it); a
/// receiver gone is no error: the listing is still returned whole.
fn send_current(early: &super::ListingSender, blobs: &[RemoteBlob]) {
    let batch: Vec<RemoteBlob> = blobs
        .iter()
        .filter(|b| !history_name::is_history(&b.name))
        .cloned()
        .collect();
    if !batch.is_empty() {
        let _ = early.send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_and_slashes_kept() {
        let enc: Vec<String> = "a b/#1 %2?+é.md"
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        assert_eq!(enc.join("/"), "a%20b/%231%20%252%3F%2B%C3%A9.md");
    }
}
