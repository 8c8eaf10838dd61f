//! Where an Azure remote is: the container URL parsed from `remote.url` (account,
//! container, prefix, a SAS written into it), with the rules a URL must meet before any
//! request is built from it, and how devlogd authenticates (`remote.auth`).

use crate::redact::Secret;
use serde::Deserialize;
use std::fmt;
use url::Url;

/// How devlogd authenticates to Azure (`remote.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// SAS or account key, from the URL, the environment or the credentials file.
    #[default]
    Auto,
    /// Entra ID: a client secret from the environment, or the developer tools (`az login`).
    Entra,
    /// Entra ID through the machine's managed identity.
    ManagedIdentity,
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::Auto => "auto",
            AuthMode::Entra => "entra",
            AuthMode::ManagedIdentity => "managed-identity",
        })
    }
}

/// An Azure container, parsed from `remote.url`. Never holds a secret in plain sight.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureLocation {
    /// Scheme, host and port, plus `/ACCOUNT` for path-style (emulator) URLs.
    pub endpoint: Url,
    pub account: String,
    pub container: String,
    /// Blob-name prefix without leading or trailing `/` (empty for none).
    pub prefix: String,
    /// A SAS token that was written into the URL's query string.
    pub sas_in_url: Option<Secret>,
}

impl AzureLocation {
    /// The container URL without any query string.
    pub fn container_url(&self) -> String {
        format!(
            "{}/{}",
            self.endpoint.as_str().trim_end_matches('/'),
            self.container
        )
    }
}

impl fmt::Display for AzureLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.container_url())?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// What is wrong with an Azure URL, said after "remote.url" (never quoting a password or
/// a SAS).
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error(
        "is not a URL ({0}): use https://ACCOUNT.blob.core.windows.net/CONTAINER or file:///DIR"
    )]
    NotAUrl(url::ParseError),
    #[error(
        "has unsupported scheme `{0}`: use https:// (Azure), http:// (an emulator on this machine) or file://"
    )]
    Scheme(String),
    #[error(
        "carries a user name or password before the host, which devlogd never sends: remove the `USER:PASSWORD@` part and give a SAS token or account key as described under Credentials"
    )]
    UserInfo,
    #[error("has no host")]
    NoHost,
    #[error(
        "uses plain http to {0}: the journal and the credentials would cross the network unencrypted; use https:// (plain http is only for an emulator on this machine: 127.0.0.1, ::1 or localhost)"
    )]
    PlainHttp(String),
    #[error(
        "needs the account and container, like http://127.0.0.1:10000/devstoreaccount1/CONTAINER"
    )]
    NoAccount,
    #[error("names no container: add it to the path, like {endpoint}/CONTAINER")]
    NoContainer { endpoint: String },
    #[error(
        "has an invalid container name `{0}`: 3-63 lowercase letters, digits and single hyphens"
    )]
    ContainerName(String),
    #[error("has a query string that is not a SAS token (no sig=)")]
    NotSas,
}

/// Parse an Azure container URL (`https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`,
/// optionally with a SAS), or an emulator's path-style one
/// (`http://127.0.0.1:10000/devstoreaccount1/CONTAINER`).
pub fn parse_azure_url(text: &str) -> Result<AzureLocation, UrlError> {
    let url = Url::parse(text).map_err(UrlError::NotAUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echoed: the part before `@` may be a password.
        return Err(UrlError::UserInfo);
    }
    let host = url.host_str().ok_or(UrlError::NoHost)?.to_string();
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(UrlError::PlainHttp(host));
    }
    let mut segments: Vec<String> = url
        .path_segments()
        .map(|s| {
            s.filter(|s| !s.is_empty())
                .map(|s| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    // Path-style URLs (emulators, IP addresses) carry the account as the first segment.
    let path_style = url
        .host()
        .is_some_and(|h| !matches!(h, url::Host::Domain(_)))
        || host == "localhost"
        || !host.contains('.');
    let mut endpoint = url.clone();
    endpoint.set_query(None);
    endpoint.set_fragment(None);
    let account = if path_style {
        if segments.is_empty() {
            return Err(UrlError::NoAccount);
        }
        let account = segments.remove(0);
        endpoint.set_path(&format!("/{account}"));
        account
    } else {
        endpoint.set_path("/");
        host.split('.').next().unwrap_or_default().to_string()
    };
    if segments.is_empty() {
        return Err(UrlError::NoContainer {
            endpoint: endpoint.as_str().trim_end_matches('/').to_string(),
        });
    }
    let container = segments.remove(0);
    validate_container_name(&container)?;
    let prefix = segments.join("/");
    let sas_in_url = url
        .query()
        .filter(|q| q.split('&').any(|kv| kv.starts_with("sig=")))
        .map(|q| Secret::new(q.to_string()));
    if url.query().is_some() && sas_in_url.is_none() {
        return Err(UrlError::NotSas);
    }
    Ok(AzureLocation {
        endpoint,
        account,
        container,
        prefix,
        sas_in_url,
    })
}

/// Whether the URL's host is this machine: 127.0.0.0/8, ::1 or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn validate_container_name(name: &str) -> Result<(), UrlError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if (3..=63).contains(&name.len())
        && ok_chars
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
    {
        Ok(())
    } else {
        Err(UrlError::ContainerName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_says_what_it_always_said() {
        let said = |url: &str| parse_azure_url(url).unwrap_err().to_string();
        assert_eq!(
            said("ftp://x/y"),
            "has unsupported scheme `ftp`: use https:// (Azure), http:// (an emulator on this machine) or file://"
        );
        assert_eq!(
            said("https://acct.blob.core.windows.net/"),
            "names no container: add it to the path, like https://acct.blob.core.windows.net/CONTAINER"
        );
        assert_eq!(
            said("https://acct.blob.core.windows.net/Bad_Name"),
            "has an invalid container name `Bad_Name`: 3-63 lowercase letters, digits and single hyphens"
        );
        assert_eq!(
            said("https://acct.blob.core.windows.net/c1x?sv=1"),
            "has a query string that is not a SAS token (no sig=)"
        );
        assert_eq!(
            said("http://127.0.0.1:10000"),
            "needs the account and container, like http://127.0.0.1:10000/devstoreaccount1/CONTAINER"
        );
        assert!(
            said("not a url")
                .starts_with("is not a URL (relative URL without a base): use https://")
        );
        assert!(
            said("http://10.0.0.5/a/cc1").starts_with("uses plain http to 10.0.0.5: the journal")
        );
    }
}
