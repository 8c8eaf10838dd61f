//! What every try of every request gets on its way out, as one SDK pipeline policy: the
//! transactional `Content-MD5` on a Put Blob, then the Shared Key signature (which signs
//! the headers as they will be sent, so it comes last).

use super::shared_key::SharedKey;
use async_trait::async_trait;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Method, Request};
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct RequestPolicy {
    /// Set for Shared Key credentials; the other credentials go in the URL (a SAS) or in
    /// the SDK's own bearer-token policy (Entra ID).
    pub(super) shared_key: Option<SharedKey>,
}

#[async_trait]
impl Policy for RequestPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        add_transactional_md5(request);
        if let Some(key) = &self.shared_key {
            key.sign_request(request);
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Put Blob carries `x-ms-blob-content-md5`, which the service stores but does not check;
/// the same value as `Content-MD5` makes it check the bytes it received against the hash we
/// computed. Put Block and Put Block List (`comp=…`) are left alone: the first sends its
/// own, and the second's is the whole file's, not its body's.
fn add_transactional_md5(request: &mut Request) {
    if request.method() == Method::Put && !request.url().query().unwrap_or("").contains("comp=") {
        let md5 = request
            .headers()
            .get_optional_str(&HeaderName::from_static("x-ms-blob-content-md5"))
            .map(str::to_string);
        if let Some(md5) = md5 {
            request.insert_header("content-md5", md5);
        }
    }
}
