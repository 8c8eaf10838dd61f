//! Azure Blob Storage through the official SDK (`azure_storage_blob`).
//!
//! One HTTP transport (one connection pool) is shared by every request. The SDK's own
//! retry policy is switched off: the push pipeline decides about retries from the
//! [`RemoteError`] kind this file assigns (rclone's `shouldRetry`). Every message that
//! leaves this file has passed through [`crate::redact::scrub`].

use super::concurrency::Bound;
use super::content::{BLOCK_SIZE, Content};
use super::credential::Credential;
use super::limit::{Limiter, Outcome};
use super::location::AzureLocation;
use super::shared_key::SharedKeyPolicy;
use super::{OnRetry, Precondition, PutOutcome, Remote, RemoteBlob, RemoteError};
use crate::redact::scrub;
use async_trait::async_trait;
use azure_core::error::CheckSuccessOptions;
use azure_core::error::ErrorKind;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    ClientOptions, Context, Etag, HttpClientOptions, Method, Pipeline, PipelineSendOptions,
    Request, RetryOptions, StatusCode, Transport, Url, new_http_client,
};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientStartCopyFromUrlOptions, BlobClientStartCopyFromUrlResultHeaders,
    BlobContainerClientListBlobsOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientCommitBlockListResultHeaders, BlockBlobClientStageBlockOptions, BlockLookupList,
    CopyStatus, ListBlobsIncludeItem,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Everything but RFC 3986 unreserved characters is encoded inside a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Blob metadata key holding the writer id (see [`RemoteBlob::writer`]).
const WRITER_METADATA: &str = "devlogdwriter";
/// Blob metadata key holding when devlogd wrote the content (unix ns): finer than
/// Last-Modified's seconds, and kept by a copy into the history area.
const WRITTEN_METADATA: &str = "devlogdwritten";

use super::timeouts;

/// Blocks of one file in flight at once; the memory budget bounds all files together.
const BLOCKS_IN_FLIGHT_PER_FILE: usize = 8;

pub struct AzureRemote {
    location: AzureLocation,
    credential: Credential,
    /// `https://host/container` (no query).
    container_url: String,
    blob_options: BlobClientOptions,
    container: BlobContainerClient,
    /// The pipeline a small file's Put Blob goes through, built once (the SDK's
    /// `BlobClient` builds one per blob, and a first push makes thousands).
    put_pipeline: Pipeline,
    /// The service version requests ask for (the SDK's own).
    api_version: String,
    /// Set once the container is known to exist (or was created by us).
    container_created: Mutex<bool>,
    /// The container we created, until [`Remote::take_created_container`] says so.
    created_note: std::sync::Mutex<Option<String>>,
    /// Every request to the service goes through it (one attempt per permit).
    limiter: Arc<Limiter>,
}

impl AzureRemote {
    pub fn new(location: &AzureLocation, credential: Credential) -> Result<Self, RemoteError> {
        super::tls::install_crypto_provider();
        // The MD5 header first: Shared Key signs the headers as they will be sent.
        let mut per_try_policies: Vec<Arc<dyn Policy>> = vec![Arc::new(TransactionalMd5Policy)];
        if let Credential::SharedKey { account, key, .. } = &credential {
            let policy = SharedKeyPolicy::new(account, key.expose())
                .map_err(|message| RemoteError::Permanent { message })?;
            per_try_policies.push(Arc::new(policy));
        }
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
        let put_pipeline = Pipeline::new(
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
        Ok(AzureRemote {
            location: location.clone(),
            credential,
            container_url,
            blob_options,
            container,
            put_pipeline,
            api_version,
            container_created: Mutex::new(false),
            created_note: std::sync::Mutex::new(None),
            limiter: Limiter::new(Bound::Auto {
                max: super::concurrency::AUTO_MAX,
            }),
        })
    }

    /// The same remote with requests in flight bounded by `bound` (`sync.concurrency`).
    pub fn with_concurrency(mut self, bound: Bound) -> Self {
        self.limiter = Limiter::new(bound);
        self
    }

    /// Run one request attempt under a permit, telling the limiter how it went.
    async fn limited<T>(
        &self,
        timed: bool,
        attempt: impl std::future::Future<Output = Result<T, RemoteError>>,
    ) -> Result<T, RemoteError> {
        let permit = self.limiter.acquire().await;
        let result = attempt.await;
        permit.finish(Outcome::of(&result), timed);
        result
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
        super::check_name(name)?;
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

    /// Create the container after the service said it is missing; once per process.
    async fn create_container(&self) -> Result<(), RemoteError> {
        let mut created = self.container_created.lock().await;
        if *created {
            return Ok(());
        }
        match self.container.create(None).await {
            Ok(_) => {
                tracing::info!(container = %self.container_url, "created the container");
                if let Ok(mut note) = self.created_note.lock() {
                    *note = Some(self.location.container.clone());
                }
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
        *created = true;
        Ok(())
    }

    fn metadata(writer: &str, md5: &[u8; 16], name: &str) -> HashMap<String, String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        HashMap::from([
            (
                WRITER_METADATA.to_string(),
                super::writer_mark(writer, md5, name),
            ),
            (WRITTEN_METADATA.to_string(), now.to_string()),
        ])
    }

    /// Every blob whose name starts with `under` (below the prefix); names are given
    /// relative to the prefix.
    async fn list_under(&self, under: &str) -> Result<Vec<RemoteBlob>, RemoteError> {
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
        loop {
            let next = tokio::time::timeout(timeouts::LIST_PAGE, pager.try_next()).await;
            let item = match next {
                Err(_) => return Err(timed_out(timeouts::LIST_PAGE)),
                Ok(Ok(Some(item))) => item,
                Ok(Ok(None)) => break,
                Ok(Err(e)) if is_container_not_found(&e) => return Ok(Vec::new()),
                // A page that is no listing (bad XML): one bounded line, never the body.
                Ok(Err(e)) if matches!(e.kind(), ErrorKind::DataConversion) => {
                    return Err(RemoteError::Permanent {
                        message: format!(
                            "the service sent a listing page devlogd cannot read ({})",
                            bounded(&scrub(&error_chain(&e)), 120)
                        ),
                    });
                }
                Ok(Err(e)) => return Err(map_error(e)),
            };
            let Some(full) = item.name else { continue };
            let Some(name) = full.strip_prefix(&strip) else {
                continue;
            };
            let props = item.properties.unwrap_or_default();
            let md5 = props.content_md5.and_then(md5_array);
            let metadata = item.metadata.and_then(|m| m.values).unwrap_or_default();
            let writer = metadata
                .get(WRITER_METADATA)
                .and_then(|mark| super::writer_from_mark(mark, md5, name));
            blobs.push(RemoteBlob {
                writer,
                name: name.to_string(),
                size: props.content_length.unwrap_or(0),
                md5,
                etag: props.etag.map(|e| quoted(e.as_ref())).unwrap_or_default(),
                written_ns: written_ns(&metadata, props.last_modified),
                service_ns: props.last_modified.map(|t| t.unix_timestamp_nanos()),
                corrupt: false,
            });
        }
        Ok(blobs)
    }

    /// One Put Blob carrying the whole (small) content: the request `BlockBlobClient::upload`
    /// sends for content of one block, built here and sent on the shared pipeline.
    async fn put_small(
        &self,
        name: &str,
        data: Bytes,
        md5: [u8; 16],
        precondition: &Precondition,
        writer: &str,
    ) -> Result<PutOutcome, azure_core::Error> {
        let url = self.blob_url(name).map_err(sdk_error)?;
        let md5_b64 = B64.encode(md5);
        let mut request = Request::new(url, Method::Put);
        request.insert_header("content-length", data.len().to_string());
        request.insert_header("content-type", "application/octet-stream");
        match precondition {
            Precondition::IfAbsent => request.insert_header("if-none-match", "*"),
            Precondition::IfMatch(etag) => request.insert_header("if-match", etag.clone()),
            Precondition::None => {}
        }
        // The transactional `Content-MD5` is added by `TransactionalMd5Policy` from this.
        request.insert_header("x-ms-blob-content-md5", md5_b64);
        request.insert_header("x-ms-blob-type", "BlockBlob");
        for (key, value) in Self::metadata(writer, &md5, name) {
            request.insert_header(format!("x-ms-meta-{key}"), value);
        }
        request.insert_header("x-ms-version", self.api_version.clone());
        request.set_body(data);
        let response = self
            .put_pipeline
            .send(
                &Context::new(),
                &mut request,
                Some(PipelineSendOptions {
                    check_success: CheckSuccessOptions {
                        success_codes: &[201],
                    },
                    ..Default::default()
                }),
            )
            .await?;
        let headers = response.headers();
        let returned = headers
            .get_optional_str(&HeaderName::from_static("content-md5"))
            .and_then(|b64| B64.decode(b64).ok());
        if let Some(returned) = returned
            && returned.as_slice() != md5
        {
            return Err(azure_core::Error::with_message(
                ErrorKind::DataConversion,
                format!(
                    "integrity check failed for {name}: the service stored different content (Content-MD5 mismatch)"
                ),
            ));
        }
        let etag = headers
            .get_optional_str(&HeaderName::from_static("etag"))
            .map(quoted)
            .unwrap_or_default();
        Ok(PutOutcome { etag, md5 })
    }

    /// A large file: its blocks are read in order from the open file and staged a few at a
    /// time (Put Block, each with its own transactional MD5), then committed (Put Block List)
    /// with the whole file's MD5 as the blob's Content-MD5 and the same precondition as a
    /// single Put Blob. Nothing is committed if the file changed while it was read.
    async fn put_blocks(
        &self,
        name: &str,
        content: &Content,
        precondition: &Precondition,
        writer: &str,
        on_retry: OnRetry<'_>,
    ) -> Result<PutOutcome, RemoteError> {
        let client = self.blob_client(name)?.block_blob_client();
        // Block ids are unique to this attempt, so two writers staging blocks on the same
        // blob never mix theirs; all ids of one blob have the same length, as required.
        let nonce: u64 = rand::random();
        let block_id = |index: u32| format!("devlogd-{nonce:016x}-{index:08}").into_bytes();
        let mut reader = content.blocks(BLOCK_SIZE);
        let mut ids = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        let mut done_reading = false;
        loop {
            if done_reading || in_flight.len() >= BLOCKS_IN_FLIGHT_PER_FILE {
                match in_flight.next().await {
                    Some(staged) => staged?,
                    None => break,
                }
                continue;
            }
            // Waiting for memory for the next block must not stop this file's blocks in
            // flight from finishing (and giving memory back): with every file waiting, and
            // no one staging, nothing would ever be freed. Reading a block is cancel-safe: the
            // reader moves on only once a block is read whole.
            let next = tokio::select! {
                Some(staged) = in_flight.next(), if !in_flight.is_empty() => {
                    staged?;
                    continue;
                }
                next = reader.next_block() => next?,
            };
            match next {
                None => done_reading = true,
                Some(block) => {
                    let id = block_id(block.index);
                    ids.push(id.clone());
                    let client = &client;
                    in_flight.push(async move {
                        // The whole block moves in, so its share of the memory budget is
                        // held until it is staged (capturing only the fields it uses would
                        // give the share back at once).
                        let block = block;
                        self.stage_block(client, &id, block.data.clone(), block.md5, on_retry)
                            .await
                    });
                }
            }
        }
        let md5 = reader.finish()?;
        let mut options = BlockBlobClientCommitBlockListOptions {
            blob_content_md5: Some(md5.to_vec()),
            metadata: Some(Self::metadata(writer, &md5, name)),
            ..Default::default()
        };
        match precondition {
            Precondition::IfAbsent => options.if_none_match = Some(Etag::from("*")),
            Precondition::IfMatch(etag) => options.if_match = Some(Etag::from(etag.clone())),
            Precondition::None => {}
        }
        let list = BlockLookupList {
            latest: Some(ids),
            ..Default::default()
        };
        let body = list.try_into().map_err(map_error)?;
        let response = self
            .limited(true, async {
                tokio::time::timeout(
                    timeouts::LIST_PAGE,
                    client.commit_block_list(body, Some(options)),
                )
                .await
                .map_err(|_| timed_out(timeouts::LIST_PAGE))?
                .map_err(map_error)
            })
            .await?;
        let etag = response
            .etag()
            .ok()
            .flatten()
            .map(|e| quoted(e.as_ref()))
            .unwrap_or_default();
        Ok(PutOutcome { etag, md5 })
    }

    /// Stage one block, retrying it alone on a transient failure (a 1 GiB upload is not
    /// started over for one lost block); creates the container if it is missing.
    async fn stage_block(
        &self,
        client: &azure_storage_blob::BlockBlobClient,
        id: &[u8],
        data: Bytes,
        md5: [u8; 16],
        on_retry: OnRetry<'_>,
    ) -> Result<(), RemoteError> {
        let retry = super::retry::RetryPolicy::default();
        retry
            .run_observed(
                || {
                let data = data.clone();
                async move {
                    let options = BlockBlobClientStageBlockOptions {
                        transactional_content_md5: Some(md5.to_vec()),
                        ..Default::default()
                    };
                    let len = data.len() as u64;
                    let limit = timeouts::for_body(len);
                    // Answered (`Ok`) or not, as for a small put; a block's time is mostly
                    // its transfer, so it is no latency sample.
                    let attempt = self
                        .limited(false, async {
                            match tokio::time::timeout(
                                limit,
                                client.stage_block(id, len, data.into(), Some(options)),
                            )
                            .await
                            {
                                Err(_) => Err(timed_out(limit)),
                                Ok(Ok(_)) => Ok(Ok(())),
                                Ok(Err(e)) if is_container_not_found(&e) => Ok(Err(e)),
                                Ok(Err(e)) => Err(map_error(e)),
                            }
                        })
                        .await?;
                    match attempt {
                        Ok(_) => Ok(()),
                        Err(e) if is_container_not_found(&e) => {
                            self.create_container().await?;
                            Err(RemoteError::Transient {
                                message: CREATED_CONTAINER.into(),
                                retry_after: Some(Duration::ZERO),
                            })
                        }
                        Err(e) => Err(map_error(e)),
                    }
                }
                },
                // Trying again after creating the container is no trouble to report.
                |e| {
                    if !matches!(e, RemoteError::Transient { message, .. } if message == CREATED_CONTAINER)
                    {
                        on_retry(e)
                    }
                },
            )
            .await
    }
}

/// The "error" a block staged before its container existed is tried again with.
const CREATED_CONTAINER: &str = "created the container";

#[async_trait]
impl Remote for AzureRemote {
    fn describe(&self) -> String {
        self.location.to_string()
    }

    fn credential_source(&self) -> String {
        self.credential.source().to_string()
    }

    async fn probe(&self) -> Result<super::Probe, RemoteError> {
        super::azure_probe::probe(&self.container, &self.location.prefix).await
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
        let date = self
            .limited(true, async {
                let sent = tokio::time::timeout(
                    timeouts::ANSWER,
                    self.put_pipeline.send(
                        &Context::new(),
                        &mut request,
                        Some(PipelineSendOptions {
                            check_success: CheckSuccessOptions {
                                success_codes: &[200, 404],
                            },
                            ..Default::default()
                        }),
                    ),
                )
                .await
                .map_err(|_| timed_out(timeouts::ANSWER))?
                .map_err(map_error)?;
                Ok(sent
                    .headers()
                    .get_optional_str(&HeaderName::from_static("date"))
                    .and_then(super::parse_http_date))
            })
            .await?;
        Ok(date)
    }

    fn sas(&self) -> Option<super::sas::SasInfo> {
        match &self.credential {
            Credential::Sas { token, .. } => Some(super::sas::SasInfo::parse(token.expose())),
            _ => None,
        }
    }

    fn take_created_container(&self) -> Option<String> {
        self.created_note.lock().ok().and_then(|mut n| n.take())
    }

    fn name_prefix(&self) -> String {
        self.location.prefix.clone()
    }

    fn limiter(&self) -> Option<&Limiter> {
        Some(&self.limiter)
    }

    async fn put(
        &self,
        name: &str,
        content: &Content,
        precondition: &Precondition,
        writer: &str,
    ) -> Result<PutOutcome, RemoteError> {
        self.put_reporting(name, content, precondition, writer, &|_| {})
            .await
    }

    async fn put_reporting(
        &self,
        name: &str,
        content: &Content,
        precondition: &Precondition,
        writer: &str,
        on_retry: OnRetry<'_>,
    ) -> Result<PutOutcome, RemoteError> {
        let Some(data) = content.inline() else {
            return self
                .put_blocks(name, content, precondition, writer, on_retry)
                .await;
        };
        let md5 = content.md5().await?;
        let limit = timeouts::for_body(data.len() as u64);
        // One attempt under a permit; a missing container comes back as `Ok(Err(_))`, an
        // answer, so it is created (outside the permit) and the put tried once more.
        let attempt = || {
            self.limited(true, async {
                match tokio::time::timeout(
                    limit,
                    self.put_small(name, data.clone(), md5, precondition, writer),
                )
                .await
                {
                    Err(_) => Err(timed_out(limit)),
                    Ok(Ok(outcome)) => Ok(Ok(outcome)),
                    Ok(Err(e)) if is_container_not_found(&e) => Ok(Err(e)),
                    Ok(Err(e)) => Err(map_error(e)),
                }
            })
        };
        match attempt().await? {
            Ok(outcome) => Ok(outcome),
            Err(_) => {
                self.create_container().await?;
                attempt().await?.map_err(map_error)
            }
        }
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        let client = self.blob_client(name)?;
        let response = self
            .limited(true, async {
                match tokio::time::timeout(timeouts::ANSWER, client.get_properties(None)).await {
                    Err(_) => Err(timed_out(timeouts::ANSWER)),
                    Ok(Err(e)) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
                    Ok(Err(e)) => Err(map_error(e)),
                    Ok(Ok(r)) => Ok(Some(r)),
                }
            })
            .await?;
        let Some(response) = response else {
            return Ok(None);
        };
        let md5 = response.content_md5().ok().flatten().and_then(md5_array);
        let metadata = response.metadata().unwrap_or_default();
        let writer = metadata
            .get(WRITER_METADATA)
            .and_then(|mark| super::writer_from_mark(mark, md5, name));
        Ok(Some(RemoteBlob {
            written_ns: written_ns(&metadata, response.last_modified().ok().flatten()),
            service_ns: response
                .last_modified()
                .ok()
                .flatten()
                .map(|t| t.unix_timestamp_nanos()),
            corrupt: false,
            writer,
            name: name.to_string(),
            size: response.content_length().ok().flatten().unwrap_or(0),
            md5,
            etag: response
                .etag()
                .ok()
                .flatten()
                .map(|e| quoted(e.as_ref()))
                .unwrap_or_default(),
        }))
    }

    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        let mut blobs = self.list_under("").await?;
        blobs.retain(|b| !super::history_name::is_history(&b.name));
        Ok(blobs)
    }

    async fn list_history(&self, path: Option<&str>) -> Result<Vec<RemoteBlob>, RemoteError> {
        let under = match path {
            Some(p) => {
                super::check_name(p)?;
                format!("{}/{p}/", super::history_name::HISTORY_DIR)
            }
            None => format!("{}/", super::history_name::HISTORY_DIR),
        };
        self.list_under(&under).await
    }

    async fn get(
        &self,
        name: &str,
        sink: &mut (dyn std::io::Write + Send),
    ) -> Result<Option<RemoteBlob>, RemoteError> {
        // One download under one permit; its time is mostly transfer, so no latency sample.
        self.limited(false, async {
            use md5::{Digest, Md5};
            let client = self.blob_client(name)?;
            let options = BlobClientDownloadOptions {
                // Set explicitly: the default asks the OS for the CPU count on every call.
                parallel: NonZeroUsize::new(1),
                ..Default::default()
            };
            let result =
                match tokio::time::timeout(timeouts::SLOW_ANSWER, client.download(Some(options))).await {
                    Err(_) => return Err(timed_out(timeouts::SLOW_ANSWER)),
                    Ok(Err(e)) if e.http_status() == Some(StatusCode::NotFound) => return Ok(None),
                    Ok(Err(e)) => return Err(map_error(e)),
                    Ok(Ok(r)) => r,
                };
            let props = result.properties;
            let stored_md5 = props
                .blob_content_md5
                .clone()
                .or(props.content_md5.clone())
                .and_then(md5_array);
            let mut body = result.body;
            let mut hasher = Md5::new();
            let mut size = 0u64;
            loop {
                let chunk = match tokio::time::timeout(timeouts::SLOW_ANSWER, body.next()).await {
                    Err(_) => return Err(timed_out(timeouts::SLOW_ANSWER)),
                    Ok(None) => break,
                    Ok(Some(Err(e))) => return Err(map_error(e)),
                    Ok(Some(Ok(chunk))) => chunk,
                };
                hasher.update(&chunk);
                size += chunk.len() as u64;
                sink.write_all(&chunk).map_err(|e| RemoteError::Permanent {
                    message: format!("cannot write {name}: {e}"),
                })?;
            }
            let md5: [u8; 16] = hasher.finalize().into();
            if stored_md5.is_some_and(|stored| stored != md5) {
                return Err(RemoteError::Permanent {
                    message: format!(
                        "integrity check failed for {name}: the bytes received do not match the blob's Content-MD5"
                    ),
                });
            }
            let writer = props
                .metadata
                .get(WRITER_METADATA)
                .and_then(|mark| super::writer_from_mark(mark, Some(md5), name));
            Ok(Some(RemoteBlob {
                name: name.to_string(),
                size,
                md5: Some(md5),
                etag: props
                    .etag
                    .as_ref()
                    .map(|e| quoted(e.as_ref()))
                    .unwrap_or_default(),
                writer,
                written_ns: written_ns(&props.metadata, props.last_modified),
                service_ns: props.last_modified.map(|t| t.unix_timestamp_nanos()),
                corrupt: false,
            }))
        })
        .await
    }

    async fn preserve(
        &self,
        name: &str,
        etag: &str,
        history_name: &str,
    ) -> Result<(), RemoteError> {
        // Copy Blob, server-side, of exactly the version we are about to replace
        // (x-ms-source-if-match); the copy keeps the source's metadata (writer mark and
        // write time). Within one account the copy completes before the response. The
        // history name derives from the version, and the copy only creates (If-None-Match:
        // *): a retry finds its copy there and makes no second one.
        let source = self.blob_url(name)?.to_string();
        let client = self.blob_client(history_name)?;
        let options = BlobClientStartCopyFromUrlOptions {
            source_if_match: Some(Etag::from(etag.to_string())),
            if_none_match: Some(Etag::from("*")),
            ..Default::default()
        };
        let permit = self.limiter.acquire().await;
        let attempt = tokio::time::timeout(
            timeouts::SLOW_ANSWER,
            client.start_copy_from_url(source, Some(options)),
        )
        .await;
        permit.finish(timed_attempt_outcome(&attempt), true);
        let response = match attempt {
            Err(_) => return Err(timed_out(timeouts::SLOW_ANSWER)),
            // The source is gone: it is not the version we were to keep.
            Ok(Err(e)) if e.http_status() == Some(StatusCode::NotFound) => {
                return Err(if is_container_not_found(&e) {
                    map_error(e)
                } else {
                    RemoteError::Conflict
                });
            }
            // The destination exists: this version was kept already (a retry), unless a
            // blob with other content took the name.
            Ok(Err(e)) if is_destination_taken(&e) => {
                return self.check_kept(name, etag, history_name).await;
            }
            Ok(Err(e)) => return Err(map_error(e)),
            Ok(Ok(r)) => r,
        };
        let status = response.copy_status().ok().flatten();
        if status.is_some_and(|s| s != CopyStatus::Success) {
            // Pending (a copy the service runs in the background): wait for it, so the
            // version is complete before the original is replaced.
            self.wait_for_copy(history_name).await?;
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
        let permit = self.limiter.acquire().await;
        let attempt = tokio::time::timeout(timeouts::ANSWER, client.delete(Some(options))).await;
        permit.finish(timed_attempt_outcome(&attempt), true);
        match attempt {
            Err(_) => Err(timed_out(timeouts::ANSWER)),
            Ok(Err(e)) if e.http_status() == Some(StatusCode::NotFound) => Ok(()),
            Ok(Err(e)) if is_permission_mismatch(&e) => Err(RemoteError::Auth {
                message: format!(
                    "the SAS lacks delete permission (sp={}): deletes and history pruning need d (HTTP 403 AuthorizationPermissionMismatch)",
                    self.sas()
                        .and_then(|s| s.permissions)
                        .unwrap_or_else(|| "?".into())
                ),
            }),
            Ok(Err(e)) => match map_error(e) {
                // Some services answer a conditional delete of a missing blob with 412.
                RemoteError::Conflict if self.head(name).await?.is_none() => Ok(()),
                other => Err(other),
            },
            Ok(Ok(_)) => Ok(()),
        }
    }
}

impl AzureRemote {
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
            let response = tokio::time::timeout(timeouts::ANSWER, client.get_properties(None))
                .await
                .map_err(|_| timed_out(timeouts::ANSWER))?
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

/// When the content was written: devlogd's own record, else the service's Last-Modified.
fn written_ns(
    metadata: &HashMap<String, String>,
    last_modified: Option<time::OffsetDateTime>,
) -> Option<i128> {
    metadata
        .get(WRITTEN_METADATA)
        .and_then(|v| v.parse::<i128>().ok())
        .or_else(|| last_modified.map(|t| t.unix_timestamp_nanos()))
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

/// A failure of ours while building a request, as an SDK error.
fn sdk_error(e: RemoteError) -> azure_core::Error {
    azure_core::Error::with_message(ErrorKind::Other, e.to_string())
}

/// What one SDK request under a time limit says about the path: running out of time is
/// pushback.
fn timed_attempt_outcome<T>(
    attempt: &Result<azure_core::Result<T>, tokio::time::error::Elapsed>,
) -> Outcome {
    match attempt {
        Err(_) => Outcome::Overloaded { retry_after: None },
        Ok(Ok(_)) => Outcome::Answered,
        Ok(Err(e)) => sdk_outcome(e),
    }
}

/// What a failed request says about the path: pushback and connection failures slow the
/// limiter down; any other answer (404, 412, …) is an answer.
fn sdk_outcome(e: &azure_core::Error) -> Outcome {
    match e.kind() {
        ErrorKind::HttpResponse { status, .. }
            if matches!(u16::from(*status), 408 | 429 | 500..=599) =>
        {
            match map_error_ref(e) {
                RemoteError::Transient { retry_after, .. } => Outcome::Overloaded { retry_after },
                _ => Outcome::Overloaded { retry_after: None },
            }
        }
        ErrorKind::Connection | ErrorKind::Io => Outcome::Overloaded { retry_after: None },
        _ => Outcome::Answered,
    }
}

fn timed_out(limit: Duration) -> RemoteError {
    RemoteError::Unreachable {
        message: format!(
            "timed out: no answer from the service within {} s",
            limit.as_secs()
        ),
    }
}

fn permanent_url(e: url::ParseError) -> RemoteError {
    RemoteError::Permanent {
        message: format!("cannot build a request URL: {e}"),
    }
}

/// A copy refused because its destination exists (If-None-Match: * on the destination).
fn is_destination_taken(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, error_code, .. }
        if (*status == StatusCode::Conflict && error_code.as_deref() == Some("BlobAlreadyExists"))
            || (*status == StatusCode::PreconditionFailed
                && error_code.as_deref() == Some("TargetConditionNotMet")))
}

fn is_permission_mismatch(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, error_code: Some(code), .. }
        if *status == StatusCode::Forbidden && code == "AuthorizationPermissionMismatch")
}

fn is_container_not_found(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, error_code: Some(code), .. }
        if *status == StatusCode::NotFound && code == "ContainerNotFound")
}

/// Sort an SDK error into retry / conflict / auth / permanent, scrubbing its text.
pub fn map_error(e: azure_core::Error) -> RemoteError {
    map_error_ref(&e)
}

fn map_error_ref(e: &azure_core::Error) -> RemoteError {
    let mut message = scrub(&error_chain(e)).into_owned();
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let code = error_code.as_deref().unwrap_or("");
            // Of a service's error body keep only the status, the code and a short message:
            // a body may echo parts of the request (a signature without `sig=` in front).
            let detail = raw_response
                .as_ref()
                .and_then(|r| service_message(r.body()))
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            message = scrub(&format!("HTTP {} {code}{detail}", u16::from(*status))).into_owned();
            let retry_after = raw_response
                .as_ref()
                .and_then(|r| {
                    r.headers()
                        .get_optional_str(&HeaderName::from_static("retry-after"))
                })
                .and_then(super::retry::parse_retry_after);
            let status_num = u16::from(*status);
            let skew = raw_response.as_ref().and_then(|r| {
                clock_off_by(
                    r.headers()
                        .get_optional_str(&HeaderName::from_static("date")),
                )
            });
            match status_num {
                412 => RemoteError::Conflict,
                409 if code == "BlobAlreadyExists" => RemoteError::Conflict,
                // A request signed with a skewed clock ("Request date header too old"):
                // name the clock, not the key.
                401 | 403 if skew.is_some() && code != "AuthorizationPermissionMismatch" => {
                    RemoteError::Auth {
                        message: skew.map(super::clock_skew_message).unwrap_or_default(),
                    }
                }
                403 if code == "AuthorizationPermissionMismatch" => RemoteError::Auth {
                    message: format!(
                        "the credentials lack a permission this request needs (HTTP 403 {code})"
                    ),
                },
                401 | 403 => RemoteError::Auth {
                    message: format!(
                        "the service refused the credentials (HTTP {status_num} {code})"
                    ),
                },
                408 | 429 | 500..=599 => RemoteError::Transient {
                    message,
                    retry_after,
                },
                _ => RemoteError::Permanent { message },
            }
        }
        ErrorKind::Connection | ErrorKind::Io => RemoteError::Unreachable {
            message: root_cause(e),
        },
        ErrorKind::Credential => RemoteError::Auth {
            message: format!(
                "could not get an Entra ID token: {}",
                token_failure(&message)
            ),
        },
        _ => RemoteError::Permanent {
            message: bounded(&message, 300),
        },
    }
}

/// `text` as one line of at most `max` characters, shown as names are
/// ([`crate::redact::printable`]): what a service sent (a body quoted in a parser's error)
/// never reaches a terminal raw.
fn bounded(text: &str, max: usize) -> String {
    let cut: String = text.chars().take(max).collect();
    let more = if text.chars().nth(max).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", crate::redact::printable(&cut))
}

/// How far this machine's clock is from a service whose answer carried `date`, when that is
/// more than a signed request may be off (Azure refuses beyond 15 minutes; past 5 the clock
/// is the likely cause of a refusal).
fn clock_off_by(date: Option<&str>) -> Option<time::Duration> {
    let service = super::parse_http_date(date?)?;
    let off = time::OffsetDateTime::now_utc() - service;
    (off.abs() > time::Duration::minutes(5)).then_some(off)
}

/// The `<Message>` of a service error body: first line only, control characters removed,
/// at most 200 characters.
fn service_message(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Message>")? + "<Message>".len();
    let end = text[start..].find("</Message>")? + start;
    let first_line = text[start..end].lines().next().unwrap_or("").trim();
    let clean: String = first_line
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// The SDK's multi-line credential-chain error as one line, without the boilerplate.
fn token_failure(message: &str) -> String {
    let mut reasons: Vec<&str> = message
        .lines()
        .filter_map(|l| l.split(" - ").nth(1).or(Some(l)))
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Multiple errors")
                && !l.starts_with("To troubleshoot")
                && !l.contains("authentication failed.")
        })
        .collect();
    reasons.dedup();
    if reasons.is_empty() {
        message.lines().next().unwrap_or("").to_string()
    } else {
        reasons.join("; ")
    }
}

/// The innermost cause ("Connection refused (os error 111)"), scrubbed: what a user can act on.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    scrub(&last).into_owned()
}

/// The error and its sources on one line (reqwest hides the useful part in `source()`).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Adds the transactional `Content-MD5` header to Put Blob requests, so the service checks
/// the bytes it received against the hash we computed (the SDK only sets
/// `x-ms-blob-content-md5`, which is stored but not verified).
#[derive(Debug)]
struct TransactionalMd5Policy;

#[async_trait]
impl Policy for TransactionalMd5Policy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if request.method() == Method::Put && !request.url().query().unwrap_or("").contains("comp=")
        {
            let md5 = request
                .headers()
                .get_optional_str(&HeaderName::from_static("x-ms-blob-content-md5"))
                .map(str::to_string);
            if let Some(md5) = md5 {
                request.insert_header("content-md5", md5);
            }
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bounded_first_line_of_a_service_message_is_kept() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>InvalidQueryParameterValue</Code><Message>Value for one of the query parameters specified in the request URI is invalid.\nRequestId:1\nTime:2026</Message><QueryParameterName>sig</QueryParameterName><QueryParameterValue>c2VjcmV0</QueryParameterValue></Error>";
        assert_eq!(
            service_message(body).as_deref(),
            Some("Value for one of the query parameters specified in the request URI is invalid.")
        );
        assert_eq!(service_message(b"not xml"), None);
        let long = format!("<Message>{}\u{1b}</Message>", "x".repeat(500));
        assert_eq!(service_message(long.as_bytes()).unwrap().len(), 200);
    }

    #[test]
    fn text_from_the_service_is_one_bounded_escaped_line() {
        assert_eq!(bounded("a\nb\u{1b}[2J", 100), "a\\nb\\u{1b}[2J");
        assert_eq!(bounded("a\u{202e}b", 100), "a\\u{202e}b");
        assert_eq!(
            bounded(&"x".repeat(500), 10),
            format!("{}…", "x".repeat(10))
        );
    }

    #[test]
    fn segments_are_encoded_and_slashes_kept() {
        let enc: Vec<String> = "a b/#1 %2?+é.md"
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        assert_eq!(enc.join("/"), "a%20b/%231%20%252%3F%2B%C3%A9.md");
    }
}
