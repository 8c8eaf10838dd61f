//! Shared Key signing ("Authorize with Shared Key", Microsoft's Blob service docs), applied
//! to each try by the per-try policy (`policy.rs`): the official Rust SDK signs only with
//! Entra ID tokens or SAS, so this signer is ours.
//!
//! Each try gets a fresh `x-ms-date` and `Authorization: SharedKey ACCOUNT:SIGNATURE`, where
//! the signature is HMAC-SHA256, keyed with the decoded account key, over the string to
//! sign built by [`string_to_sign`] (pure, unit-tested; checked end to end against Azurite).

use azure_core::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An account key that does not decode (never echoed: it is a secret).
#[derive(Debug, thiserror::Error)]
#[error("the account key is not valid base64: copy it again from the portal (Access keys)")]
pub struct BadAccountKey;

pub struct SharedKey {
    account: String,
    /// Zeroed when the signer (and so the request policy holding it) is dropped.
    key: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKey")
            .field("account", &self.account)
            .field("key", &crate::redact::MASK)
            .finish()
    }
}

impl SharedKey {
    /// `key_b64` is the account key as the portal shows it (base64).
    pub fn new(account: &str, key_b64: &str) -> Result<Self, BadAccountKey> {
        let key = BASE64.decode(key_b64.trim()).map_err(|_| BadAccountKey)?;
        Ok(SharedKey {
            account: account.to_string(),
            key: zeroize::Zeroizing::new(key),
        })
    }

    fn sign(&self, string_to_sign: &str) -> String {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(string_to_sign.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }

    /// Date and sign one try of `request` (its headers as they will be sent).
    pub fn sign_request(&self, request: &mut Request) {
        let now = time::OffsetDateTime::now_utc();
        request.insert_header("x-ms-date", http_date(now));
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().to_string()))
            .collect();
        let content_length = request.body().len().unwrap_or(0);
        let url = request.url().clone();
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let method = request.method().to_string();
        let sts = string_to_sign(
            &method,
            &headers,
            content_length,
            &self.account,
            url.path(),
            &query,
        );
        let signature = self.sign(&sts);
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account),
        );
    }
}

/// RFC 1123 date, as `x-ms-date` wants it.
pub fn http_date(t: time::OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The Blob service's string to sign for Shared Key (version 2009-09-19 and later).
/// `headers` have lowercase names; `path` is the request path as sent (percent-encoded);
/// `query` holds decoded pairs.
pub fn string_to_sign(
    method: &str,
    headers: &[(String, String)],
    content_length: u64,
    account: &str,
    path: &str,
    query: &[(String, String)],
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in query {
        params
            .entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.clone());
    }
    let mut resource = format!("/{account}{path}");
    for (k, mut values) in params {
        values.sort();
        resource.push_str(&format!("\n{k}:{}", values.join(",")));
    }
    [
        method.to_ascii_uppercase(),
        header("content-encoding"),
        header("content-language"),
        length,
        header("content-md5"),
        header("content-type"),
        String::new(), // Date: x-ms-date is used instead
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ]
    .join("\n")
        + "\n"
        + &canonical_headers
        + &resource
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn put_blob_string_to_sign() {
        let sts = string_to_sign(
            "PUT",
            &h(&[
                ("x-ms-version", "2026-04-06"),
                ("x-ms-date", "Sun, 22 Nov 2026 10:00:00 GMT"),
                ("content-md5", "rL0Y20zC+Fzt72VPzMSk2A=="),
                ("x-ms-blob-type", "BlockBlob"),
                ("if-none-match", "*"),
                ("content-type", "application/octet-stream"),
            ]),
            3,
            "devstoreaccount1",
            "/devstoreaccount1/c1/a%20b/%C3%A9.md",
            &[],
        );
        assert_eq!(
            sts,
            "PUT\n\n\n3\nrL0Y20zC+Fzt72VPzMSk2A==\napplication/octet-stream\n\n\n\n*\n\n\n\
             x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 22 Nov 2026 10:00:00 GMT\nx-ms-version:2026-04-06\n\
             /devstoreaccount1/devstoreaccount1/c1/a%20b/%C3%A9.md"
        );
    }

    #[test]
    fn list_query_parameters_are_sorted_lowercased_and_joined() {
        let sts = string_to_sign(
            "GET",
            &h(&[("x-ms-version", "v")]),
            0,
            "acct",
            "/c1",
            &[
                ("restype".into(), "container".into()),
                ("comp".into(), "list".into()),
                ("prefix".into(), "a b/+%".into()),
                ("Include".into(), "metadata".into()),
                ("include".into(), "deleted".into()),
            ],
        );
        assert!(sts.starts_with("GET\n\n\n\n\n"), "{sts}");
        assert!(
            sts.ends_with(
                "x-ms-version:v\n/acct/c1\ncomp:list\ninclude:deleted,metadata\nprefix:a b/+%\nrestype:container"
            ),
            "{sts}"
        );
    }

    #[test]
    fn dates_are_rfc1123() {
        let t = time::macros::datetime!(2026-11-22 09:05:03 UTC);
        assert_eq!(http_date(t), "Sun, 22 Nov 2026 09:05:03 GMT");
    }

    #[test]
    fn bad_key_is_explained_without_echoing_it() {
        let e = SharedKey::new("a", "not base64!!").unwrap_err().to_string();
        assert!(
            e.contains("not valid base64") && !e.contains("not base64!!"),
            "{e}"
        );
    }
}
