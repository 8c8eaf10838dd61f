//! Opening the configured pipeline — the journal root, its filter, the remote with its
//! credentials, the state index — once, the same way for the daemon's worker, `push`,
//! `verify` and `restore`, each failure with its exit code and the fix.

use crate::config::{Config, RemoteConfig};
use crate::exit::Failure;
use crate::filter::Filter;
use crate::remote::Remote;
use crate::state::StateIndex;
use std::sync::Arc;

/// Everything one configuration needs to read the journal and talk to the remote.
pub struct Session {
    pub config: Config,
    pub filter: Filter,
    pub remote: Arc<dyn Remote>,
}

/// How to treat a damaged state index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamagedIndex {
    /// Refuse, with the command that rebuilds it.
    Refuse,
    /// Keep it aside and start a fresh one (`push --all` rebuilds it from the remote).
    Rebuild,
}

impl Session {
    pub fn open(config: Config) -> Result<Session, Failure> {
        Session::open_with(config, None)
    }

    /// [`Session::open`] with `remote` when one is already open (its key unlocked before
    /// the instance lock was taken).
    pub fn open_with(config: Config, remote: Option<Arc<dyn Remote>>) -> Result<Session, Failure> {
        require_root(&config)?;
        let filter = filter_for(&config)?;
        // Errors building a remote are configuration problems (credentials, a bad URL).
        let remote = match remote {
            Some(remote) => remote,
            None => open_remote(&config).map_err(|e| Failure::usage(e.to_string()))?,
        };
        Ok(Session {
            config,
            filter,
            remote,
        })
    }

    /// The state index of this configuration's remote.
    /// Paths the state index flags as conflicts; none when there is no index yet (nothing
    /// is created to find out) or it cannot be read.
    pub fn conflict_paths(&self) -> Vec<String> {
        let config = &self.config;
        let identity = config.remote.identity();
        if !StateIndex::path_for(config.state_dir(), &identity).exists() {
            return Vec::new();
        }
        StateIndex::open(config.state_dir(), &identity)
            .and_then(|s| s.conflict_paths())
            .unwrap_or_default()
    }

    /// This machine's writer id on the configured remote, once its index exists.
    pub fn own_writer(&self) -> Option<String> {
        own_writer(&self.config)
    }

    pub fn open_index(&self, damaged: DamagedIndex) -> Result<StateIndex, Failure> {
        let config = &self.config;
        let identity = config.remote.identity();
        match StateIndex::open(config.state_dir(), &identity) {
            Ok(s) => Ok(s),
            Err(e) if damaged == DamagedIndex::Rebuild && e.is_rebuildable() => {
                let aside = StateIndex::move_aside(config.state_dir(), &identity)
                    .map_err(|io| Failure::usage(format!("{e}; moving it aside failed: {io}")))?;
                eprintln!(
                    "The state index was unusable ({e}); kept it as {} and rebuilding from the remote.",
                    aside.display()
                );
                StateIndex::open(config.state_dir(), &identity)
                    .map_err(|e| Failure::usage(e.to_string()))
            }
            Err(e) => Err(Failure::usage(e.to_string())),
        }
    }
}

/// The variables `remote.auth = "auto"` reads, in the order the first one set wins.
const CREDENTIAL_VARS: [&str; 3] = [
    crate::remote::credential::SAS_ENV,
    crate::remote::credential::CONNECTION_STRING_ENV,
    crate::remote::credential::ACCOUNT_KEY_ENV,
];

/// A credential in devlogd's environment that wins over a different one in the
/// credentials file (a token rotated in the file, while the service manager still hands
/// the old one to the daemon): said, never silent.
pub fn shadowed_credential(config: &Config) -> Option<String> {
    shadowed_credential_with(config, &|name| std::env::var(name).ok())
}

fn shadowed_credential_with(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let RemoteConfig::Azure(location) = &config.remote else {
        return None;
    };
    if location.sas_in_url.is_some()
        || config.auth != crate::remote::azure::location::AuthMode::Auto
    {
        return None;
    }
    let file =
        crate::remote::credential::CredentialsFile::load(&config.dirs.credentials_file()).ok()?;
    let set = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    for (i, var) in CREDENTIAL_VARS.iter().enumerate() {
        let in_env = set(env(var).as_deref());
        let in_file = set(file.get(var));
        match (in_env, in_file) {
            (None, None) => continue,
            // The file's value is the one used (or the same as the environment's).
            (None, Some(_)) => return None,
            (Some(e), Some(f)) if e == f => return None,
            (Some(_), _) => {
                // The environment's wins over this variable and every later one in the file.
                let shadowed = CREDENTIAL_VARS[i..]
                    .iter()
                    .find(|v| set(file.get(v)).is_some())?;
                return Some(format!(
                    "{var} in devlogd's environment is used, not {shadowed} in the credentials file {} (a token rotated there has no effect): remove {var} from the service's environment, then restart devlogd",
                    file.path.display()
                ));
            }
        }
    }
    None
}

/// The filter of a configuration (reads the root's `.devlogignore`).
pub fn filter_for(config: &Config) -> Result<Filter, Failure> {
    Filter::new(&config.root, &config.sync.include, &config.sync.exclude)
        .map_err(|e| Failure::usage(e.to_string()))
}

/// This machine's writer id on `config`'s remote, once its index exists.
pub fn own_writer(config: &Config) -> Option<String> {
    let identity = config.remote.identity();
    if !StateIndex::path_for(config.state_dir(), &identity).exists() {
        return None;
    }
    StateIndex::open(config.state_dir(), &identity)
        .ok()
        .map(|s| s.writer_id().to_string())
}

/// Build the remote a configuration names, resolving its credentials; with `[encryption]`
/// on, the encrypting remote around it (its key is unlocked by [`Remote::ready`] or on
/// first use).
pub fn open_remote(config: &Config) -> Result<Arc<dyn Remote>, crate::remote::RemoteError> {
    let remote = open_plain_remote(config)?;
    if !config.encryption.enabled {
        return Ok(remote);
    }
    let source = crate::remote::encrypted::KeySource {
        passphrase: passphrase_source(config),
        cached: key_copy_path(config),
    };
    Ok(Arc::new(crate::remote::encrypted::EncryptedRemote::new(
        remote, source,
    )))
}

/// Make `remote` ready before a command works with it ([`Remote::ready`]): the key
/// unlocked (or, with `create`, made for an empty prefix), an encryption mismatch refused.
/// A missing or wrong passphrase is exit 7, a mismatch exit 2; a remote that cannot be
/// reached is left for the command's own requests to report.
pub async fn ready(remote: &dyn Remote, create: bool) -> Result<(), Failure> {
    match remote.ready(create).await {
        Ok(()) => Ok(()),
        Err(e) => ready_failure(remote, e),
    }
}

/// What [`ready`] makes of [`Remote::ready`]'s error.
pub fn ready_failure(
    remote: &dyn Remote,
    error: crate::remote::RemoteError,
) -> Result<(), Failure> {
    use crate::remote::RemoteError;
    match error {
        RemoteError::Locked { message } => Err(Failure::new(crate::exit::LOCKED, message)),
        RemoteError::Auth { message } => Err(Failure::new(
            crate::exit::AUTH,
            format!(
                "{}: {message}; the credentials came from {}",
                remote.describe(),
                remote.credential_source()
            ),
        )),
        e if e.is_transient() => Ok(()),
        e => Err(Failure::usage(e.to_string())),
    }
}

/// This machine's copy of the key blob of `config`'s remote, beside its state index.
pub fn key_copy_path(config: &Config) -> std::path::PathBuf {
    StateIndex::path_for(config.state_dir(), &config.remote.identity()).with_extension("key")
}

/// Where the passphrase comes from, first found wins: `DEVLOG_PASSPHRASE` in the
/// environment, `[encryption] passphrase_command`, `DEVLOG_PASSPHRASE` in the credentials
/// file.
pub fn passphrase_source(config: &Config) -> crate::remote::encrypted::key_blob::Passphrase {
    use crate::remote::credential::PASSPHRASE_ENV;
    let command = config.encryption.passphrase_command.clone();
    let credentials = config.dirs.credentials_file();
    let config_file = config.file.clone();
    Box::new(move || {
        if let Some(p) = std::env::var_os(PASSPHRASE_ENV).filter(|v| !v.is_empty()) {
            return p
                .into_string()
                .map(zeroize::Zeroizing::new)
                .map_err(|_| format!("{PASSPHRASE_ENV} in the environment is not valid UTF-8"));
        }
        if let Some(command) = &command {
            return run_passphrase_command(command);
        }
        let file = crate::remote::credential::CredentialsFile::load(&credentials)
            .map_err(|e| e.to_string())?;
        if let Some(p) = file.get(PASSPHRASE_ENV).filter(|p| !p.is_empty()) {
            return Ok(zeroize::Zeroizing::new(p.to_string()));
        }
        Err(format!(
            "encryption is on but no passphrase was given: set {PASSPHRASE_ENV} in the environment or in {} (0600), or passphrase_command under [encryption] in {}",
            credentials.display(),
            config_file.display()
        ))
    })
}

/// The passphrase a command prints (as restic's `--password-command`): its standard
/// output without the trailing newline.
fn run_passphrase_command(command: &str) -> Result<zeroize::Zeroizing<String>, String> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run passphrase_command: {e}"))?;
    let stdout = zeroize::Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(format!(
            "passphrase_command failed ({}): fix it or give DEVLOG_PASSPHRASE",
            output.status
        ));
    }
    let text = std::str::from_utf8(&stdout)
        .map_err(|_| "passphrase_command printed something that is not UTF-8".to_string())?;
    let pass = text.strip_suffix('\n').unwrap_or(text);
    let pass = pass.strip_suffix('\r').unwrap_or(pass);
    if pass.is_empty() {
        return Err("passphrase_command printed nothing: fix it or give DEVLOG_PASSPHRASE".into());
    }
    Ok(zeroize::Zeroizing::new(pass.to_string()))
}

fn open_plain_remote(config: &Config) -> Result<Arc<dyn Remote>, crate::remote::RemoteError> {
    match &config.remote {
        RemoteConfig::Directory {
            path,
            embedded_default,
        } => Ok(Arc::new(crate::remote::directory::DirectoryRemote::new(
            path,
            *embedded_default,
        ))),
        RemoteConfig::Azure(location) => {
            let file =
                crate::remote::credential::CredentialsFile::load(&config.dirs.credentials_file())
                    .map_err(|e| crate::remote::RemoteError::Permanent {
                    message: e.to_string(),
                })?;
            let credential = crate::remote::credential::resolve(location, config.auth, &file)?;
            Ok(Arc::new(
                crate::remote::azure::AzureRemote::new(location, credential)?
                    .with_concurrency(config.sync.concurrency_bound()),
            ))
        }
    }
}

/// A missing root is a setup problem, said once with the fix.
fn require_root(config: &Config) -> Result<(), Failure> {
    if config.root.is_dir() {
        return Ok(());
    }
    let where_set = if config.file_exists {
        format!("set `root` in {}", config.file.display())
    } else {
        format!("set `root` in a config file at {}", config.file.display())
    };
    Err(Failure::usage(format!(
        "the journal root {} does not exist: create it (mkdir -p {}) or {where_set}",
        config.root.display(),
        config.root.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dirs, parse_raw};
    use std::os::unix::fs::OpenOptionsExt;

    fn config_with_credentials(dir: &std::path::Path, credentials: &str) -> Config {
        let config_dir = dir.join("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(config_dir.join("credentials"))
            .unwrap();
        std::io::Write::write_all(&mut f, credentials.as_bytes()).unwrap();
        let dirs = Dirs {
            home: dir.to_path_buf(),
            config_dir,
            state_dir: dir.join("state"),
            data_dir: dir.join("data"),
            runtime_dir: None,
        };
        let file = dir.join("config.toml");
        let text = "[remote]\nurl = \"https://acct.blob.core.windows.net/journal\"\n";
        Config::from_raw(parse_raw(&file, text).unwrap(), file, true, dirs).unwrap()
    }

    #[test]
    fn an_environment_token_shadowing_the_credentials_file_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with_credentials(dir.path(), "AZURE_STORAGE_SAS_TOKEN=sv=new&sig=b\n");
        let old = |name: &str| (name == "AZURE_STORAGE_SAS_TOKEN").then(|| "sv=old&sig=a".into());
        let said = shadowed_credential_with(&config, &old).expect("said");
        assert!(
            said.starts_with("AZURE_STORAGE_SAS_TOKEN in devlogd's environment is used"),
            "{said}"
        );
        // The same value, or nothing in the environment: nothing to say.
        let same = |name: &str| (name == "AZURE_STORAGE_SAS_TOKEN").then(|| "sv=new&sig=b".into());
        assert_eq!(shadowed_credential_with(&config, &same), None);
        assert_eq!(shadowed_credential_with(&config, &|_| None), None);
        // A SAS in the environment also wins over an account key in the file.
        let config = config_with_credentials(dir.path(), "AZURE_STORAGE_ACCOUNT_KEY=a2V5\n");
        let said = shadowed_credential_with(&config, &old).expect("said");
        assert!(said.contains("not AZURE_STORAGE_ACCOUNT_KEY"), "{said}");
    }
}
