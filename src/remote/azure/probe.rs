//! The Azure probe: one List Blobs request for at most one blob below the prefix, with
//! the configured credentials. Reads one page and writes nothing; tells an unreachable
//! service, refused credentials and a missing container apart.

use super::map_error;
use crate::remote::{Probe, RemoteError};
use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_storage_blob::BlobContainerClient;
use azure_storage_blob::models::BlobContainerClientListBlobsOptions;
use futures::TryStreamExt;
use std::time::Duration;

/// Long enough for a slow link, short enough for a person waiting on `config check`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn probe(
    container: &BlobContainerClient,
    prefix: &str,
) -> Result<Probe, RemoteError> {
    let options = BlobContainerClientListBlobsOptions {
        maxresults: Some(1),
        prefix: (!prefix.is_empty()).then(|| format!("{prefix}/")),
        ..Default::default()
    };
    let mut pager = container.list_blobs(Some(options)).map_err(map_error)?;
    match tokio::time::timeout(PROBE_TIMEOUT, pager.try_next()).await {
        Err(_) => Err(RemoteError::Unreachable {
            message: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        }),
        Ok(Ok(_)) => Ok(Probe {
            container_exists: true,
        }),
        Ok(Err(e)) if container_not_found(&e) => Ok(Probe {
            container_exists: false,
        }),
        Ok(Err(e)) => Err(map_error(e)),
    }
}

fn container_not_found(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, error_code: Some(code), .. }
        if *status == StatusCode::NotFound && code == "ContainerNotFound")
}
