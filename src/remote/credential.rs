//! Where Azure credentials come from, in a documented order, and which one was used.
//!
//! Order: a SAS token in `remote.url`, `AZURE_STORAGE_SAS_TOKEN`, then
//! `AZURE_STORAGE_CONNECTION_STRING` (its `SharedAccessSignature=` part). Account-key
//! signing and Entra ID slot in here as further [`Credential`] variants. Values are wrapped
//! in [`Secret`] the moment they are read, so they are masked everywhere after.

use super::RemoteError;
use crate::config::AzureLocation;
use crate::redact::Secret;
use std::fmt;

pub const SAS_ENV: &str = "AZURE_STORAGE_SAS_TOKEN";
pub const CONNECTION_STRING_ENV: &str = "AZURE_STORAGE_CONNECTION_STRING";
pub const ACCOUNT_KEY_ENV: &str = "AZURE_STORAGE_ACCOUNT_KEY";

/// Which source a credential was taken from (shown to users; never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    UrlQuery,
    SasEnv,
    ConnectionString,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSource::UrlQuery => "the SAS token in remote.url",
            CredentialSource::SasEnv => "the SAS token in AZURE_STORAGE_SAS_TOKEN",
            CredentialSource::ConnectionString => {
                "the SAS in AZURE_STORAGE_CONNECTION_STRING (SharedAccessSignature)"
            }
        })
    }
}

#[derive(Debug, Clone)]
pub enum Credential {
    /// A shared access signature: the query string appended to every request URL.
    Sas {
        token: Secret,
        source: CredentialSource,
    },
}

impl Credential {
    pub fn source(&self) -> CredentialSource {
        match self {
            Credential::Sas { source, .. } => *source,
        }
    }
}

/// Resolve credentials for `location` from the URL and the environment.
pub fn resolve(location: &AzureLocation) -> Result<Credential, RemoteError> {
    resolve_from(location, |name| std::env::var(name).ok())
}

/// [`resolve`] with the environment passed in, for tests.
pub fn resolve_from(
    location: &AzureLocation,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credential, RemoteError> {
    if let Some(token) = &location.sas_in_url {
        return Ok(Credential::Sas {
            token: token.clone(),
            source: CredentialSource::UrlQuery,
        });
    }
    if let Some(token) = env(SAS_ENV).filter(|v| !v.trim().is_empty()) {
        let token = Secret::new(token.trim().trim_start_matches('?').to_string());
        if !token.expose().contains("sig=") {
            return Err(RemoteError::Permanent {
                message: format!(
                    "{SAS_ENV} does not look like a SAS token (it has no sig= part): copy the whole token, e.g. sv=...&sig=..."
                ),
            });
        }
        return Ok(Credential::Sas {
            token,
            source: CredentialSource::SasEnv,
        });
    }
    if let Some(cs) = env(CONNECTION_STRING_ENV).filter(|v| !v.trim().is_empty()) {
        let cs = Secret::new(cs);
        let parts = parse_connection_string(cs.expose());
        if let Some(sas) = parts
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("SharedAccessSignature"))
        {
            let token = Secret::new(sas.1.trim_start_matches('?').to_string());
            return Ok(Credential::Sas {
                token,
                source: CredentialSource::ConnectionString,
            });
        }
        if parts
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("AccountKey"))
        {
            return Err(account_key_unsupported(CONNECTION_STRING_ENV));
        }
        return Err(RemoteError::Permanent {
            message: format!(
                "{CONNECTION_STRING_ENV} has neither SharedAccessSignature= nor AccountKey=: check the value"
            ),
        });
    }
    if env(ACCOUNT_KEY_ENV).is_some_and(|v| !v.trim().is_empty()) {
        return Err(account_key_unsupported(ACCOUNT_KEY_ENV));
    }
    Err(RemoteError::Permanent {
        message: format!(
            "no credentials for {location}: set {SAS_ENV} to a SAS token with read, add, create, write and list permissions, or {CONNECTION_STRING_ENV} to a connection string with SharedAccessSignature="
        ),
    })
}

fn account_key_unsupported(var: &str) -> RemoteError {
    RemoteError::Permanent {
        message: format!(
            "{var} holds an account key, which this devlogd cannot sign with yet: create a SAS token (az storage container generate-sas) and set {SAS_ENV}"
        ),
    }
}

/// `Key=Value;Key=Value` (values may contain `=`).
fn parse_connection_string(cs: &str) -> Vec<(String, String)> {
    cs.split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RemoteConfig, parse_remote_url};
    use std::collections::HashMap;
    use std::path::Path;

    fn location(url: &str) -> AzureLocation {
        match parse_remote_url(url, Path::new("/")).unwrap() {
            RemoteConfig::Azure(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn order_is_url_then_sas_env_then_connection_string() {
        let with_sas = location("https://a.blob.core.windows.net/ccc?sv=1&sig=urlsignature1");
        let plain = location("https://a.blob.core.windows.net/ccc");
        let all = env(&[
            (SAS_ENV, "?sv=2&sig=envsignature1"),
            (
                CONNECTION_STRING_ENV,
                "SharedAccessSignature=sv=3&sig=cssignature1",
            ),
        ]);
        assert_eq!(
            resolve_from(&with_sas, &all).unwrap().source(),
            CredentialSource::UrlQuery
        );
        let Credential::Sas { token, source } = resolve_from(&plain, &all).unwrap();
        assert_eq!(source, CredentialSource::SasEnv);
        assert_eq!(token.expose(), "sv=2&sig=envsignature1");
        let cs_only = env(&[(
            CONNECTION_STRING_ENV,
            "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=3&sig=cs1=",
        )]);
        let Credential::Sas { token, source } = resolve_from(&plain, &cs_only).unwrap();
        assert_eq!(source, CredentialSource::ConnectionString);
        assert_eq!(token.expose(), "sv=3&sig=cs1=");
    }

    #[test]
    fn missing_or_unsupported_credentials_say_what_to_set() {
        let plain = location("https://a.blob.core.windows.net/ccc");
        let e = resolve_from(&plain, env(&[])).unwrap_err().to_string();
        assert!(e.contains(SAS_ENV), "{e}");
        let e = resolve_from(
            &plain,
            env(&[(
                CONNECTION_STRING_ENV,
                "AccountName=a;AccountKey=c2VjcmV0a2V5",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("account key"), "{e}");
        assert!(!e.contains("c2VjcmV0a2V5"), "{e}");
    }
}
