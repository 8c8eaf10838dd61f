//! The two ways a blob is written: one Put Blob for content up to a block (built here and
//! sent on the shared pipeline), and for larger files Put Block for each block (each with
//! its MD5, retried alone) then Put Block List with the whole file's MD5 and the
//! precondition. Either creates the container when the service says it is missing.

use super::errors::{is_container_not_found, map_error, sdk_error};
use super::metadata::metadata;
use super::request::Timing;
use super::{AzureRemote, quoted};
use crate::remote::content::BLOCK_SIZE;
use crate::remote::retry::RetryPolicy;
use crate::remote::{OnRetry, Precondition, Put, PutOutcome, RemoteError, timeouts};
use azure_core::error::{CheckSuccessOptions, ErrorKind};
use azure_core::http::headers::HeaderName;
use azure_core::http::{Context, Etag, Method, PipelineSendOptions, Request};
use azure_storage_blob::BlockBlobClient;
use azure_storage_blob::models::{
    BlockBlobClientCommitBlockListOptions, BlockBlobClientCommitBlockListResultHeaders,
    BlockBlobClientStageBlockOptions, BlockLookupList,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::future::Future;

/// Blocks of one file in flight at once; the memory budget bounds all files together.
const BLOCKS_IN_FLIGHT_PER_FILE: usize = 8;

impl AzureRemote {
    /// Content read whole at open goes in one Put Blob, a larger file in blocks.
    pub(super) async fn put_content(&self, put: Put<'_>) -> Result<PutOutcome, RemoteError> {
        let Some(data) = put.content.inline() else {
            return self.put_blocks(&put).await;
        };
        let md5 = put.content.md5().await?;
        let limit = timeouts::for_body(data.len() as u64);
        self.creating_container(|| {
            self.send(
                limit,
                Timing::Sample,
                self.put_small(&put, data.clone(), md5),
            )
        })
        .await
    }

    /// One attempt, and when the service says the container is missing, the container
    /// created (outside the permit) and the attempt made once more.
    async fn creating_container<T, Fut>(&self, attempt: impl Fn() -> Fut) -> Result<T, RemoteError>
    where
        Fut: Future<Output = Result<azure_core::Result<T>, RemoteError>>,
    {
        match attempt().await? {
            Err(e) if is_container_not_found(&e) => {
                self.create_container().await?;
                attempt().await?.map_err(map_error)
            }
            answer => answer.map_err(map_error),
        }
    }

    /// One Put Blob carrying the whole (small) content: the request `BlockBlobClient::upload`
    /// sends for content of one block, built here and sent on the shared pipeline.
    async fn put_small(
        &self,
        put: &Put<'_>,
        data: Bytes,
        md5: [u8; 16],
    ) -> Result<PutOutcome, azure_core::Error> {
        let url = self.blob_url(put.name).map_err(sdk_error)?;
        let mut request = Request::new(url, Method::Put);
        request.insert_header("content-length", data.len().to_string());
        request.insert_header("content-type", "application/octet-stream");
        match put.precondition {
            Precondition::IfAbsent => request.insert_header("if-none-match", "*"),
            Precondition::IfMatch(etag) => request.insert_header("if-match", etag.clone()),
            Precondition::None => {}
        }
        // The transactional `Content-MD5` is added by `RequestPolicy` from this.
        request.insert_header("x-ms-blob-content-md5", B64.encode(md5));
        request.insert_header("x-ms-blob-type", "BlockBlob");
        for (key, value) in metadata(put.writer, put.host, &md5, put.name, put.seal.as_ref()) {
            request.insert_header(format!("x-ms-meta-{key}"), value);
        }
        request.insert_header("x-ms-version", self.api_version.clone());
        request.set_body(data);
        let response = self
            .pipeline
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
                    "integrity check failed for {}: the service stored different content (Content-MD5 mismatch)",
                    put.name
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
    async fn put_blocks(&self, put: &Put<'_>) -> Result<PutOutcome, RemoteError> {
        let client = self.blob_client(put.name)?.block_blob_client();
        // Block ids are unique to this attempt, so two writers staging blocks on the same
        // blob never mix theirs; all ids of one blob have the same length, as required.
        let nonce: u64 = rand::random();
        let block_id = |index: u32| format!("devlogd-{nonce:016x}-{index:08}").into_bytes();
        let mut reader = Some(put.content.blocks(BLOCK_SIZE));
        let mut ids = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        let mut done_reading = false;
        // The block being read, kept across the loop's turns (it holds the reader, and gives
        // it back with the block): a read dropped whenever a staged block finished first
        // would be read (and encrypted) again, the dropped one still running on the blocking
        // pool with memory the budget no longer counts.
        let mut reading = None;
        loop {
            if done_reading || in_flight.len() >= BLOCKS_IN_FLIGHT_PER_FILE {
                match in_flight.next().await {
                    Some(staged) => staged?,
                    None => break,
                }
                continue;
            }
            if reading.is_none() {
                let mut r = reader.take().expect("the reader is back after each read");
                reading = Some(Box::pin(async move {
                    let next = r.next_block().await;
                    (r, next)
                }));
            }
            // Waiting for memory for the next block must not stop this file's blocks in
            // flight from finishing (and giving memory back): with every file waiting, and
            // no one staging, nothing would ever be freed.
            let next = tokio::select! {
                Some(staged) = in_flight.next(), if !in_flight.is_empty() => {
                    staged?;
                    continue;
                }
                (r, next) = reading.as_mut().expect("set above") => {
                    reading = None;
                    reader = Some(r);
                    next?
                }
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
                        self.stage_block(client, &id, block.data.clone(), block.md5, put.on_retry)
                            .await
                    });
                }
            }
        }
        let md5 = reader
            .take()
            .expect("the reader is back after the last read")
            .finish()?;
        let mut options = BlockBlobClientCommitBlockListOptions {
            blob_content_md5: Some(md5.to_vec()),
            metadata: Some(metadata(
                put.writer,
                put.host,
                &md5,
                put.name,
                put.seal.as_ref(),
            )),
            ..Default::default()
        };
        match put.precondition {
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
            .send(
                timeouts::LIST_PAGE,
                Timing::Sample,
                client.commit_block_list(body, Some(options)),
            )
            .await?
            .map_err(map_error)?;
        let etag = response
            .etag()
            .ok()
            .flatten()
            .map(|e| quoted(e.as_ref()))
            .unwrap_or_default();
        Ok(PutOutcome { etag, md5 })
    }

    /// Stage one block, retrying it alone on a transient failure (a 1 GiB upload is not
    /// started over for one lost block) and telling `on_retry` of each retry; creates the
    /// container if it is missing.
    async fn stage_block(
        &self,
        client: &BlockBlobClient,
        id: &[u8],
        data: Bytes,
        md5: [u8; 16],
        on_retry: OnRetry<'_>,
    ) -> Result<(), RemoteError> {
        let len = data.len() as u64;
        let limit = timeouts::for_body(len);
        let attempt = || {
            let options = BlockBlobClientStageBlockOptions {
                transactional_content_md5: Some(md5.to_vec()),
                ..Default::default()
            };
            // A block's time is mostly its transfer, so it is no latency sample.
            self.send(
                limit,
                Timing::Transfer,
                client.stage_block(id, len, data.clone().into(), Some(options)),
            )
        };
        RetryPolicy::default()
            .run_observed(|| self.creating_container(&attempt), on_retry)
            .await
            .map(|_| ())
    }
}
