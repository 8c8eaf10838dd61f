//! Where Azure credentials come from, in a documented order, and which one was used.
//!
//! With `remote.auth = "auto"` (the default) the first of these that is set wins:
//! 1. a SAS token in `remote.url`;
//! 2. `AZURE_STORAGE_SAS_TOKEN`;
//! 3. `AZURE_STORAGE_CONNECTION_STRING` — its `SharedAccessSignature=`, else its
//!    `AccountName=`/`AccountKey=` (Shared Key signing);
//! 4. `AZURE_STORAGE_ACCOUNT_KEY` (with `AZURE_STORAGE_ACCOUNT`, or the URL's account).
//!
//! `remote.auth = "entra"` uses Entra ID: a client secret when `AZURE_CLIENT_ID`,
//! `AZURE_TENANT_ID` and `AZURE_CLIENT_SECRET` are set, otherwise the developer tools
//! (`az login`, `azd auth login`); `remote.auth = "managed-identity"` uses the machine's
//! managed identity (`AZURE_CLIENT_ID` picks a user-assigned one).
//!
//! Each variable is read from the environment first, then from the credentials file
//! (`~/.config/devlog/credentials`, `KEY=value` lines, mode 0600). Values are wrapped in
//! [`Secret`] the moment they are read, so they are masked everywhere after; only the
//! source is ever shown.

use super::location::{AuthMode, AzureLocation};
use crate::redact::Secret;
use crate::remote::RemoteError;
use azure_core::credentials::TokenCredential;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SAS_ENV: &str = "AZURE_STORAGE_SAS_TOKEN";
pub const CONNECTION_STRING_ENV: &str = "AZURE_STORAGE_CONNECTION_STRING";
pub const ACCOUNT_ENV: &str = "AZURE_STORAGE_ACCOUNT";
pub const ACCOUNT_KEY_ENV: &str = "AZURE_STORAGE_ACCOUNT_KEY";
pub const CLIENT_ID_ENV: &str = "AZURE_CLIENT_ID";
pub const TENANT_ID_ENV: &str = "AZURE_TENANT_ID";
pub const CLIENT_SECRET_ENV: &str = "AZURE_CLIENT_SECRET";
/// The passphrase that unlocks the encryption key (`[encryption]`).
pub const PASSPHRASE_ENV: &str = "DEVLOG_PASSPHRASE";

/// Every key the credentials file may set; any other is refused with its line.
const KNOWN_KEYS: [&str; 8] = [
    SAS_ENV,
    CONNECTION_STRING_ENV,
    ACCOUNT_KEY_ENV,
    ACCOUNT_ENV,
    CLIENT_ID_ENV,
    TENANT_ID_ENV,
    CLIENT_SECRET_ENV,
    PASSPHRASE_ENV,
];

/// Variables whose values are secrets (masked wherever they appear).
const SECRET_VARS: &[&str] = &[
    SAS_ENV,
    CONNECTION_STRING_ENV,
    ACCOUNT_KEY_ENV,
    CLIENT_SECRET_ENV,
    PASSPHRASE_ENV,
];

pub enum Credential {
    /// A shared access signature: the query string appended to every request URL.
    Sas { token: Secret, source: String },
    /// The account key: every request signed with Shared Key.
    SharedKey {
        account: String,
        key: Secret,
        source: String,
    },
    /// An Entra ID token credential (bearer tokens).
    Entra {
        credential: Arc<dyn TokenCredential>,
        source: String,
    },
}

impl Credential {
    /// Where it came from, for messages and `ctl status` (never the value).
    pub fn source(&self) -> &str {
        match self {
            Credential::Sas { source, .. }
            | Credential::SharedKey { source, .. }
            | Credential::Entra { source, .. } => source,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({})", self.source())
    }
}

/// Why the credentials file cannot be used (never quoting a line: it may hold a secret).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} line {line}: expected KEY=value", path.display())]
    Syntax { path: PathBuf, line: usize },
    /// A key devlogd never reads (a misspelt one would otherwise be ignored without a word).
    #[error("{} line {line}: unknown key {}", path.display(), unknown_key(key.as_deref(), *suggestion))]
    UnknownKey {
        path: PathBuf,
        line: usize,
        /// The key, when it cannot be a secret pasted alone.
        key: Option<String>,
        suggestion: Option<&'static str>,
    },
}

/// `FOO (did you mean …?)`, or the keys devlogd reads.
fn unknown_key(key: Option<&str>, suggestion: Option<&str>) -> String {
    let known = format!(
        "{} and {}",
        KNOWN_KEYS[..KNOWN_KEYS.len() - 1].join(", "),
        KNOWN_KEYS[KNOWN_KEYS.len() - 1]
    );
    match (key, suggestion) {
        (Some(key), Some(closest)) => format!("{key} (did you mean {closest}?)"),
        (Some(key), None) => format!("{key}; the known keys are {known}"),
        (None, _) => format!("(not shown: it may be a secret); the known keys are {known}"),
    }
}

/// The known key `key` is a misspelling of (in any case, at most 3 edits away).
fn closest_key(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_uppercase();
    KNOWN_KEYS
        .iter()
        .map(|known| (edit_distance(&key, known), *known))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.bytes().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The `KEY=value` credentials file.
#[derive(Debug, Clone, Default)]
pub struct CredentialsFile {
    pub path: PathBuf,
    values: HashMap<String, String>,
}

impl CredentialsFile {
    /// Read `path` if it exists. It must be a private file of this user (checked by
    /// [`check_private`] at config load).
    pub fn load(path: &Path) -> Result<Self, CredentialsFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CredentialsFile {
                    path: path.to_path_buf(),
                    values: HashMap::new(),
                });
            }
            Err(source) => {
                return Err(CredentialsFileError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut values = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(CredentialsFileError::Syntax {
                    path: path.to_path_buf(),
                    line: n + 1,
                });
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            let key = key.trim().to_string();
            if !KNOWN_KEYS.contains(&key.as_str()) {
                let suggestion = closest_key(&key);
                // A variable name, not a secret pasted alone: upper case, or close to a key.
                let name_like = key.len() <= 64
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && (suggestion.is_some() || !key.bytes().any(|b| b.is_ascii_lowercase()));
                return Err(CredentialsFileError::UnknownKey {
                    path: path.to_path_buf(),
                    line: n + 1,
                    key: name_like.then_some(key),
                    suggestion,
                });
            }
            if SECRET_VARS.contains(&key.as_str()) {
                crate::redact::register_secret(value);
            }
            values.insert(key, value.to_string());
        }
        Ok(CredentialsFile {
            path: path.to_path_buf(),
            values,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

pub use crate::fsutil::check_private;

/// One variable's value and where it came from.
struct Found {
    value: String,
    origin: String,
}

/// Environment first, then the credentials file.
struct Lookup<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: &'a CredentialsFile,
}

impl Lookup<'_> {
    fn get(&self, name: &str) -> Option<Found> {
        if let Some(v) = (self.env)(name).filter(|v| !v.trim().is_empty()) {
            if SECRET_VARS.contains(&name) {
                crate::redact::register_secret(&v);
            }
            return Some(Found {
                value: v,
                origin: format!("{name} (environment)"),
            });
        }
        self.file
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Found {
                value: v.to_string(),
                origin: format!("{name} (credentials file {})", self.file.path.display()),
            })
    }
}

/// Resolve credentials for `location` from the URL, the environment and `file`.
pub fn resolve(
    location: &AzureLocation,
    auth: AuthMode,
    file: &CredentialsFile,
) -> Result<Credential, RemoteError> {
    resolve_from(location, auth, &|name| std::env::var(name).ok(), file)
}

/// [`resolve`] with the environment passed in, for tests.
pub fn resolve_from(
    location: &AzureLocation,
    auth: AuthMode,
    env: &dyn Fn(&str) -> Option<String>,
    file: &CredentialsFile,
) -> Result<Credential, RemoteError> {
    let lookup = Lookup { env, file };
    match auth {
        AuthMode::Auto => resolve_auto(location, &lookup),
        AuthMode::Entra | AuthMode::ManagedIdentity => resolve_entra(location, auth, &lookup),
    }
}

fn permanent(message: String) -> RemoteError {
    RemoteError::Permanent { message }
}

/// A token that cannot be a SAS, said with where it came from before any request is sent.
fn checked_sas(token: &str, origin: &str) -> Result<(), RemoteError> {
    super::sas::check(token).map_err(|e| permanent(format!("{origin}: {e}")))
}

fn resolve_auto(location: &AzureLocation, lookup: &Lookup<'_>) -> Result<Credential, RemoteError> {
    if let Some(token) = &location.sas_in_url {
        checked_sas(token.expose(), "remote.url")?;
        return Ok(Credential::Sas {
            token: token.clone(),
            source: "the SAS token in remote.url".into(),
        });
    }
    if let Some(found) = lookup.get(SAS_ENV) {
        let token = Secret::new(found.value.trim().trim_start_matches('?').to_string());
        checked_sas(token.expose(), &found.origin)?;
        return Ok(Credential::Sas {
            token,
            source: format!("the SAS token in {}", found.origin),
        });
    }
    if let Some(found) = lookup.get(CONNECTION_STRING_ENV) {
        let parts = parse_connection_string(&found.value);
        let part = |name: &str| {
            parts
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if let Some(sas) = part("SharedAccessSignature") {
            let token = Secret::new(sas.trim_start_matches('?').to_string());
            checked_sas(token.expose(), &found.origin)?;
            return Ok(Credential::Sas {
                token,
                source: format!("the SAS in {}", found.origin),
            });
        }
        if let Some(key) = part("AccountKey") {
            let account = part("AccountName").unwrap_or_else(|| location.account.clone());
            return shared_key(
                location,
                account,
                key,
                format!("the account key in {}", found.origin),
            );
        }
        return Err(permanent(format!(
            "{} has neither SharedAccessSignature= nor AccountKey=: check the value",
            found.origin
        )));
    }
    if let Some(found) = lookup.get(ACCOUNT_KEY_ENV) {
        let account = lookup
            .get(ACCOUNT_ENV)
            .map(|a| a.value.trim().to_string())
            .unwrap_or_else(|| location.account.clone());
        return shared_key(
            location,
            account,
            found.value,
            format!("the account key in {}", found.origin),
        );
    }
    Err(permanent(format!(
        "no credentials for {location}: set {SAS_ENV} (a SAS with read, add, create, write, delete and list permissions), {CONNECTION_STRING_ENV}, or {ACCOUNT_KEY_ENV}, in the environment or in {}; or set remote.auth = \"entra\"",
        lookup.file.path.display()
    )))
}

fn shared_key(
    location: &AzureLocation,
    account: String,
    key: String,
    source: String,
) -> Result<Credential, RemoteError> {
    if account != location.account {
        return Err(permanent(format!(
            "{source} is for account `{account}`, but remote.url names account `{}`: use the key of the account in the URL",
            location.account
        )));
    }
    let key = Secret::new(key.trim().to_string());
    // Fail now, not on the first request, if the key cannot be decoded.
    super::shared_key::SharedKey::new(&account, key.expose())
        .map_err(|e| permanent(e.to_string()))?;
    Ok(Credential::SharedKey {
        account,
        key,
        source,
    })
}

fn resolve_entra(
    location: &AzureLocation,
    auth: AuthMode,
    lookup: &Lookup<'_>,
) -> Result<Credential, RemoteError> {
    crate::remote::tls::install_crypto_provider();
    if location.endpoint.scheme() != "https" {
        return Err(permanent(format!(
            "Entra ID tokens are only sent over https, but remote.url is {}: use an https:// URL, or a SAS or account key for an emulator",
            location.endpoint.scheme()
        )));
    }
    let failed = |what: &str, e: azure_core::Error| {
        permanent(format!(
            "cannot set up Entra ID ({what}): {}",
            crate::redact::scrub(&e.to_string())
        ))
    };
    if auth == AuthMode::ManagedIdentity {
        let user_assigned = lookup.get(CLIENT_ID_ENV).map(|f| f.value);
        let options = azure_identity::ManagedIdentityCredentialOptions {
            user_assigned_id: user_assigned
                .clone()
                .map(azure_identity::UserAssignedId::ClientId),
            ..Default::default()
        };
        let credential = azure_identity::ManagedIdentityCredential::new(Some(options))
            .map_err(|e| failed("managed identity", e))?;
        let source = match user_assigned {
            Some(id) => format!("Entra ID: the user-assigned managed identity {id}"),
            None => "Entra ID: the system-assigned managed identity".into(),
        };
        return Ok(Credential::Entra { credential, source });
    }
    let client = (
        lookup.get(CLIENT_ID_ENV),
        lookup.get(TENANT_ID_ENV),
        lookup.get(CLIENT_SECRET_ENV),
    );
    if let (Some(id), Some(tenant), Some(secret)) = client {
        let credential = azure_identity::ClientSecretCredential::new(
            &tenant.value,
            id.value.clone(),
            azure_core::credentials::Secret::new(secret.value),
            None,
        )
        .map_err(|e| failed("client secret", e))?;
        return Ok(Credential::Entra {
            credential,
            source: format!(
                "Entra ID: the client secret of app {} in tenant {} ({})",
                id.value, tenant.value, secret.origin
            ),
        });
    }
    let credential = azure_identity::DeveloperToolsCredential::new(None)
        .map_err(|e| failed("developer tools", e))?;
    Ok(Credential::Entra {
        credential,
        source: "Entra ID: the developer tools (`az login` or `azd auth login`)".into(),
    })
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
    use crate::remote::azure::location::parse_azure_url;

    fn location(url: &str) -> AzureLocation {
        parse_azure_url(url).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn resolve_with(url: &str, pairs: &[(&str, &str)]) -> Result<Credential, RemoteError> {
        resolve_from(
            &location(url),
            AuthMode::Auto,
            &env(pairs),
            &CredentialsFile::default(),
        )
    }

    #[test]
    fn order_is_url_sas_connection_string_then_account_key() {
        let all = [
            (SAS_ENV, "?sv=2&sig=ZW52c2lnbmF0dXJl"),
            (
                CONNECTION_STRING_ENV,
                "SharedAccessSignature=sv=3&sig=Y3NzaWduYXR1cmU%3D",
            ),
            (ACCOUNT_KEY_ENV, KEY),
        ];
        let c = resolve_with(
            "https://acct.blob.core.windows.net/ccc?sv=1&sig=dXJsc2lnbmF0dXJl",
            &all,
        )
        .unwrap();
        assert_eq!(c.source(), "the SAS token in remote.url");
        let c = resolve_with("https://acct.blob.core.windows.net/ccc", &all).unwrap();
        let Credential::Sas { token, source } = c else {
            panic!()
        };
        assert_eq!(token.expose(), "sv=2&sig=ZW52c2lnbmF0dXJl");
        assert_eq!(
            source,
            "the SAS token in AZURE_STORAGE_SAS_TOKEN (environment)"
        );
        let c = resolve_with("https://acct.blob.core.windows.net/ccc", &all[1..]).unwrap();
        assert!(c.source().contains(CONNECTION_STRING_ENV), "{}", c.source());
        let c = resolve_with("https://acct.blob.core.windows.net/ccc", &all[2..]).unwrap();
        assert!(matches!(c, Credential::SharedKey { ref account, .. } if account == "acct"));
        assert!(c.source().contains(ACCOUNT_KEY_ENV));
    }

    #[test]
    fn connection_string_with_account_key_signs_for_its_account() {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
        );
        let c = resolve_with(
            "http://127.0.0.1:10000/devstoreaccount1/ccc",
            &[(CONNECTION_STRING_ENV, &cs)],
        )
        .unwrap();
        assert!(
            matches!(c, Credential::SharedKey { ref account, .. } if account == "devstoreaccount1")
        );
        let e = resolve_with(
            "https://other.blob.core.windows.net/ccc",
            &[(CONNECTION_STRING_ENV, &cs)],
        )
        .unwrap_err();
        assert!(e.to_string().contains("names account `other`"), "{e}");
        assert!(!e.to_string().contains(KEY));
    }

    #[test]
    fn missing_or_broken_credentials_say_what_to_set() {
        let e = resolve_with("https://acct.blob.core.windows.net/ccc", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(SAS_ENV) && e.contains(ACCOUNT_KEY_ENV), "{e}");
        let e = resolve_with(
            "https://acct.blob.core.windows.net/ccc",
            &[(ACCOUNT_KEY_ENV, "%%%notbase64")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("not valid base64") && !e.contains("notbase64"),
            "{e}"
        );
        let e = resolve_with(
            "https://acct.blob.core.windows.net/ccc",
            &[(SAS_ENV, "sv=1&sp=r")],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no sig="), "{e}");
    }

    #[test]
    fn credentials_file_is_read_after_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            format!(
                "# devlogd credentials\nexport {ACCOUNT_ENV}=acct\n{ACCOUNT_KEY_ENV}=\"{KEY}\"\n"
            ),
        )
        .unwrap();
        let file = CredentialsFile::load(&path).unwrap();
        let loc = location("https://acct.blob.core.windows.net/ccc");
        let c = resolve_from(&loc, AuthMode::Auto, &env(&[]), &file).unwrap();
        assert!(c.source().contains("credentials file"), "{}", c.source());
        let c = resolve_from(
            &loc,
            AuthMode::Auto,
            &env(&[(SAS_ENV, "sv=1&sig=abcdefgh")]),
            &file,
        )
        .unwrap();
        assert!(c.source().contains("(environment)"), "{}", c.source());
        std::fs::write(&path, "NOT A LINE\n").unwrap();
        let e = CredentialsFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn a_sas_that_cannot_be_one_is_said_before_any_request() {
        let url = "https://acct.blob.core.windows.net/ccc";
        let bad = |result: Result<Credential, RemoteError>| result.unwrap_err().to_string();
        let e = bad(resolve_with(
            url,
            &[(SAS_ENV, "sv=2022-11-02&sp=r&sig=%%%")],
        ));
        assert_eq!(
            e,
            "AZURE_STORAGE_SAS_TOKEN (environment): the SAS token's signature (sig) is not valid base64: copy the whole token again"
        );
        let e = bad(resolve_with(
            &format!("{url}?sv=2022-11-02&sig=a%25b%26"),
            &[],
        ));
        assert!(
            e.starts_with("remote.url: the SAS token's signature (sig) is not valid base64"),
            "{e}"
        );
        let e = bad(resolve_with(
            url,
            &[(
                CONNECTION_STRING_ENV,
                "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2022-11-02&sig=not base64",
            )],
        ));
        assert!(e.contains("signature (sig) is not valid base64"), "{e}");
        let e = bad(resolve_with(url, &[(SAS_ENV, "sp=r&sig=QUJDRA%3D%3D")]));
        assert!(e.contains("has no version (sv=)"), "{e}");
        // A real signature, percent-encoded or not, passes.
        for sig in ["QUJDRA%3D%3D", "QUJDRA==", "ab%2Bc%2Fde", "ab+c/de="] {
            let token = format!("sv=2022-11-02&sp=r&sig={sig}");
            assert!(resolve_with(url, &[(SAS_ENV, &token)]).is_ok(), "{token}");
        }
    }

    #[test]
    fn an_unknown_key_in_the_credentials_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "# mine\nAZURE_STORAGE_SAS_TOKN=sv=1&sig=QUJD\n").unwrap();
        let e = CredentialsFile::load(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{} line 2: unknown key AZURE_STORAGE_SAS_TOKN (did you mean AZURE_STORAGE_SAS_TOKEN?)",
                path.display()
            )
        );
        std::fs::write(
            &path,
            "AZURE_STORAGE_SAS_TOKEN=sv=1&sig=QUJD\nHTTPS_PROXY=x\n",
        )
        .unwrap();
        let e = CredentialsFile::load(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("line 2: unknown key HTTPS_PROXY; the known keys are AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_ACCOUNT, AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET and DEVLOG_PASSPHRASE"),
            "{e}"
        );
        std::fs::write(&path, "azure_storage_account_key=abc\n").unwrap();
        let e = CredentialsFile::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("line 1: unknown key azure_storage_account_key (did you mean AZURE_STORAGE_ACCOUNT_KEY?)"),
            "{e}"
        );
        // A key that may be a secret pasted alone (an account key ends in `=`) is not shown.
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        let e = CredentialsFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 1: unknown key (not shown"), "{e}");
        assert!(!e.contains(&KEY[..20]), "{e}");
    }

    #[test]
    fn credentials_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "A=b\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_private(&path).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_private(&path).is_ok());
        assert!(check_private(&dir.path().join("absent")).is_ok());
    }

    #[test]
    fn entra_needs_https_and_picks_its_source() {
        let file = CredentialsFile::default();
        let e = resolve_from(
            &location("http://127.0.0.1:10000/devstoreaccount1/ccc"),
            AuthMode::Entra,
            &env(&[]),
            &file,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("only sent over https"), "{e}");
        let https = location("https://acct.blob.core.windows.net/ccc");
        let c = resolve_from(&https, AuthMode::Entra, &env(&[]), &file).unwrap();
        assert!(c.source().contains("az login"), "{}", c.source());
        let secret_env = env(&[
            (CLIENT_ID_ENV, "00000000-0000-0000-0000-000000000001"),
            (TENANT_ID_ENV, "00000000-0000-0000-0000-000000000002"),
            (CLIENT_SECRET_ENV, "client-secret-value-123"),
        ]);
        let c = resolve_from(&https, AuthMode::Entra, &secret_env, &file).unwrap();
        assert!(
            c.source()
                .contains("client secret of app 00000000-0000-0000-0000-000000000001"),
            "{}",
            c.source()
        );
        assert!(!c.source().contains("client-secret-value-123"));
        let c = resolve_from(&https, AuthMode::ManagedIdentity, &env(&[]), &file).unwrap();
        assert!(
            c.source().contains("system-assigned managed identity"),
            "{}",
            c.source()
        );
    }
}
