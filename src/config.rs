//! Configuration: the raw TOML file, its defaults, and the validated [`Config`].
//!
//! Two tiers, as in ripgrep and rustic: [`RawConfig`] mirrors the file exactly (every key
//! optional, unknown keys rejected), and [`Config::load`] turns it into absolute paths,
//! durations and a checked remote. Everything that reads configuration goes through here.

pub use crate::remote::azure::location::{AuthMode, AzureLocation};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable that names the config file (overridden by `--config`).
pub const CONFIG_ENV: &str = "DEVLOG_CONFIG";

/// Default include patterns (the seed's).
pub const DEFAULT_INCLUDE: &[&str] = &["*.md", "*.jsonl", "*.toml"];
/// Default excluded directory names; hidden files and directories are always skipped.
pub const DEFAULT_EXCLUDE: &[&str] = &["target", "node_modules"];

/// Bounds (inclusive) of the numeric settings: below, nothing works; above, a clock or a
/// date would overflow.
pub const DEBOUNCE_MS: (u64, u64) = (0, 60_000);
pub const MAX_DELAY_MS: (u64, u64) = (0, 3_600_000);
pub const RESCAN_INTERVAL_S: (u64, u64) = (10, 30 * 86_400);
pub const KEEP_VERSIONS_DAYS: (u64, u64) = (1, 36_500);
pub const PULL_INTERVAL_S: (u64, u64) = (1, 86_400);
/// `alert.after_s`: how long the verdict stays unsafe before the alert command runs.
pub const ALERT_AFTER_S: (u64, u64) = (1, 7 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
    #[error(
        "config file {path} holds a secret ({what}) but its mode is {mode:o}, readable by others: run `chmod 600 {path}`"
    )]
    InsecureFile {
        path: PathBuf,
        what: &'static str,
        mode: u32,
    },
    /// The credentials file is not this user's private file.
    #[error(transparent)]
    Insecure(#[from] crate::fsutil::NotPrivate),
    #[error("cannot find the home directory: set HOME")]
    NoHome,
}

/// The file as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub root: Option<String>,
    #[serde(default)]
    pub remote: RawRemote,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub alert: RawAlert,
    #[serde(default)]
    pub encryption: RawEncryption,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    pub enabled: Option<bool>,
    pub passphrase_command: Option<String>,
}

/// `[encryption]`: end-to-end encryption of contents and names with a key unlocked by a
/// passphrase (`DEVLOG_PASSPHRASE`, or the output of `passphrase_command`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncryptionConfig {
    pub enabled: bool,
    /// Run with `sh -c`; its standard output (one trailing newline dropped) is the passphrase.
    pub passphrase_command: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    pub command: Option<String>,
    pub after_s: Option<u64>,
}

/// `[alert]`: a command run when the verdict has been unsafe for `after` (and once when it
/// is safe again), with the verdict in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertConfig {
    /// Run with `sh -c`; `None`: no alerts.
    pub command: Option<String>,
    pub after: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemote {
    pub url: Option<String>,
    pub auth: Option<AuthMode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    pub debounce_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
    pub rescan_interval_s: Option<u64>,
    pub concurrency: Option<RawConcurrency>,
    pub on_conflict: Option<OnConflict>,
    pub deletes: Option<Deletes>,
    pub keep_versions_days: Option<u32>,
    pub mode: Option<SyncMode>,
    pub pull_interval_s: Option<u64>,
}

/// `sync.mode`: whether the remote's changes also come down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// Push only: the remote is this machine's backup.
    #[default]
    Backup,
    /// Also pull: every machine on the prefix has the whole journal.
    TwoWay,
}

impl SyncMode {
    /// For people: `two-way, pull every 30 s`, `backup (…)`.
    pub fn describe(self, pull_interval: Option<Duration>) -> String {
        match (self, pull_interval) {
            (SyncMode::Backup, _) => {
                "backup (this machine's changes go up, nothing comes down)".into()
            }
            (SyncMode::TwoWay, Some(every)) => {
                format!("two-way, pull every {} s", every.as_secs())
            }
            (SyncMode::TwoWay, None) => "two-way".into(),
        }
    }
}

/// `sync.concurrency` as written: `"auto"` or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawConcurrency {
    Number(i64),
    Word(String),
}

impl SyncConfig {
    /// `sync.concurrency` for the remote's limiter.
    pub fn concurrency_bound(&self) -> crate::remote::concurrency::Bound {
        use crate::remote::concurrency::Bound;
        if self.adaptive_concurrency {
            Bound::Auto {
                max: self.concurrency,
            }
        } else {
            Bound::Fixed(self.concurrency)
        }
    }
}

/// What a push does with a file deleted (or renamed away) locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Deletes {
    /// Remove it from the current view of the remote, keeping its last content in the
    /// history area.
    #[default]
    History,
    /// Leave the remote blob in place (devlogd before version history).
    Keep,
}

/// What to do when the remote blob was changed by another writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// Push ours under a conflict name and leave theirs in place.
    #[default]
    KeepBoth,
    /// Replace theirs with ours (reported).
    Overwrite,
    /// Leave theirs, push nothing for that file (reported).
    Skip,
}

impl std::str::FromStr for OnConflict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep-both" => Ok(Self::KeepBoth),
            "overwrite" => Ok(Self::Overwrite),
            "skip" => Ok(Self::Skip),
            other => Err(format!(
                "unknown conflict policy `{other}`: use keep-both, overwrite or skip"
            )),
        }
    }
}

impl fmt::Display for OnConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::KeepBoth => "keep-both",
            Self::Overwrite => "overwrite",
            Self::Skip => "skip",
        })
    }
}

/// Where pushes go.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteConfig {
    Azure(AzureLocation),
    Directory {
        path: PathBuf,
        /// True when no remote was configured and this is the built-in mirror.
        embedded_default: bool,
    },
}

impl RemoteConfig {
    /// A stable identity for the state index: one index per remote.
    pub fn identity(&self) -> String {
        match self {
            RemoteConfig::Azure(a) => format!(
                "azure:{}/{}/{}/{}",
                a.endpoint.as_str().trim_end_matches('/'),
                a.account,
                a.container,
                a.prefix
            ),
            RemoteConfig::Directory { path, .. } => format!("dir:{}", path.display()),
        }
    }
}

impl fmt::Display for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteConfig::Azure(a) => write!(f, "{a}"),
            RemoteConfig::Directory { path, .. } => write!(f, "file://{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub debounce: Duration,
    pub max_delay: Duration,
    pub rescan_interval: Duration,
    /// Requests in flight at most (uploads in flight at most): the bound of `auto`, or
    /// the fixed number.
    pub concurrency: usize,
    /// `sync.concurrency = "auto"`: the number in flight adapts to the path, up to
    /// `concurrency`.
    pub adaptive_concurrency: bool,
    pub on_conflict: OnConflict,
    pub deletes: Deletes,
    /// Versions in the history area older than this many days are pruned.
    pub keep_versions_days: u32,
    pub mode: SyncMode,
    /// Two-way mode: how often the daemon looks for the remote's changes.
    pub pull_interval: Duration,
}

/// The platform directories devlogd uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Dirs {
    pub home: PathBuf,
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Where the control socket lives; `None` falls back to the state directory.
    pub runtime_dir: Option<PathBuf>,
}

impl Dirs {
    /// Resolve from the environment (`HOME`, `XDG_*` on Linux, the usual places on macOS).
    pub fn from_env() -> Result<Self, ConfigError> {
        let base = directories::BaseDirs::new().ok_or(ConfigError::NoHome)?;
        let project =
            directories::ProjectDirs::from("", "", "devlog").ok_or(ConfigError::NoHome)?;
        Ok(Dirs {
            home: base.home_dir().to_path_buf(),
            config_dir: project.config_dir().to_path_buf(),
            state_dir: project
                .state_dir()
                .unwrap_or_else(|| project.data_local_dir())
                .to_path_buf(),
            data_dir: project.data_dir().to_path_buf(),
            runtime_dir: project.runtime_dir().map(Path::to_path_buf),
        })
    }

    pub fn default_config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// `KEY=value` credentials, read by devlogd and by the service units.
    pub fn credentials_file(&self) -> PathBuf {
        self.config_dir.join("credentials")
    }
}

/// The validated configuration every command works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, and whether that file exists (defaults otherwise).
    pub file: PathBuf,
    pub file_exists: bool,
    pub root: PathBuf,
    pub remote: RemoteConfig,
    pub auth: AuthMode,
    pub sync: SyncConfig,
    pub alert: AlertConfig,
    pub encryption: EncryptionConfig,
    pub dirs: Dirs,
}

impl Config {
    /// Load from `explicit` (`--config`), else `$DEVLOG_CONFIG`, else the platform default.
    /// A missing file at the default place means "all defaults"; a missing explicit file is
    /// an error.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let dirs = Dirs::from_env()?;
        let env_path = std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (file, must_exist) = match explicit.map(Path::to_path_buf).or(env_path) {
            Some(p) => (p, true),
            None => (dirs.default_config_file(), false),
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => None,
            Err(source) => return Err(ConfigError::Read { path: file, source }),
        };
        let raw = match &text {
            Some(text) => parse_raw(&file, text)?,
            None => RawConfig::default(),
        };
        let config = Self::from_raw(raw, file.clone(), text.is_some(), dirs)?;
        if text.is_some() {
            check_secret_file_mode(&file, &config)?;
        }
        let credentials = config.dirs.credentials_file();
        crate::fsutil::check_private(&credentials)?;
        Ok(config)
    }

    /// Validate a parsed file against the platform directories.
    pub fn from_raw(
        raw: RawConfig,
        file: PathBuf,
        file_exists: bool,
        dirs: Dirs,
    ) -> Result<Self, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            path: file.clone(),
            key: key.to_string(),
            problem,
        };
        let root = match raw.root.as_deref() {
            Some("") => return Err(invalid("root", "is empty".into())),
            Some(r) => expand_home(r, &dirs.home),
            None => dirs.home.join(".devlog"),
        };
        if !root.is_absolute() {
            return Err(invalid(
                "root",
                format!(
                    "must be an absolute path or start with ~/ (got {})",
                    root.display()
                ),
            ));
        }
        let remote = match raw.remote.url.as_deref() {
            None => RemoteConfig::Directory {
                path: dirs.data_dir.join("mirror"),
                embedded_default: true,
            },
            Some(url) => parse_remote_url(url, &dirs.home)
                .map_err(|e| invalid("remote.url", e.to_string()))?,
        };
        if let RemoteConfig::Directory { path, .. } = &remote
            && (path.starts_with(&root) || root.starts_with(path))
        {
            return Err(invalid(
                "remote.url",
                format!(
                    "the directory remote {} overlaps the journal root {}: choose a directory outside it",
                    path.display(),
                    root.display()
                ),
            ));
        }
        let s = raw.sync;
        let include = s
            .include
            .unwrap_or_else(|| DEFAULT_INCLUDE.iter().map(|p| p.to_string()).collect());
        let exclude = s
            .exclude
            .unwrap_or_else(|| DEFAULT_EXCLUDE.iter().map(|p| p.to_string()).collect());
        for (key, patterns) in [("sync.include", &include), ("sync.exclude", &exclude)] {
            for p in patterns {
                globset::Glob::new(p)
                    .map_err(|e| invalid(key, format!("has a bad pattern `{p}`: {}", e.kind())))?;
            }
        }
        let (concurrency, adaptive_concurrency) = match s.concurrency {
            None => (crate::remote::concurrency::AUTO_MAX, true),
            Some(RawConcurrency::Word(w)) if w == "auto" => {
                (crate::remote::concurrency::AUTO_MAX, true)
            }
            Some(RawConcurrency::Number(n)) if (1..=256).contains(&n) => (n as usize, false),
            Some(RawConcurrency::Number(n)) => {
                return Err(invalid(
                    "sync.concurrency",
                    format!("must be \"auto\" or a number between 1 and 256 (got {n})"),
                ));
            }
            Some(RawConcurrency::Word(w)) => {
                return Err(invalid(
                    "sync.concurrency",
                    format!("must be \"auto\" or a number between 1 and 256 (got \"{w}\")"),
                ));
            }
        };
        // Every number has bounds: a huge one would overflow a clock or a date later, in
        // the worker, where it can only panic.
        let bounded =
            |key: &str, value: Option<u64>, default: u64, (min, max): (u64, u64), unit: &str| {
                let v = value.unwrap_or(default);
                if (min..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(invalid(
                        key,
                        format!("must be between {min} and {max} {unit} (got {v})"),
                    ))
                }
            };
        let debounce = Duration::from_millis(bounded(
            "sync.debounce_ms",
            s.debounce_ms,
            300,
            DEBOUNCE_MS,
            "milliseconds",
        )?);
        let max_delay = Duration::from_millis(bounded(
            "sync.max_delay_ms",
            s.max_delay_ms,
            5000,
            MAX_DELAY_MS,
            "milliseconds",
        )?);
        if max_delay < debounce {
            return Err(invalid(
                "sync.max_delay_ms",
                format!(
                    "must be at least sync.debounce_ms ({} ms)",
                    debounce.as_millis()
                ),
            ));
        }
        let keep_versions_days = bounded(
            "sync.keep_versions_days",
            s.keep_versions_days.map(u64::from),
            30,
            KEEP_VERSIONS_DAYS,
            "days",
        )? as u32;
        let rescan_interval = Duration::from_secs(bounded(
            "sync.rescan_interval_s",
            s.rescan_interval_s,
            3600,
            RESCAN_INTERVAL_S,
            "seconds",
        )?);
        let pull_interval = Duration::from_secs(bounded(
            "sync.pull_interval_s",
            s.pull_interval_s,
            30,
            PULL_INTERVAL_S,
            "seconds",
        )?);
        let command = raw.alert.command.filter(|c| !c.trim().is_empty());
        let alert = AlertConfig {
            command,
            after: Duration::from_secs(bounded(
                "alert.after_s",
                raw.alert.after_s,
                300,
                ALERT_AFTER_S,
                "seconds",
            )?),
        };
        let encryption = EncryptionConfig {
            enabled: raw.encryption.enabled.unwrap_or(false),
            passphrase_command: raw
                .encryption
                .passphrase_command
                .filter(|c| !c.trim().is_empty()),
        };
        Ok(Config {
            alert,
            encryption,
            file,
            file_exists,
            root,
            remote,
            auth: raw.remote.auth.unwrap_or_default(),
            sync: SyncConfig {
                include,
                exclude,
                debounce,
                max_delay,
                rescan_interval,
                concurrency,
                adaptive_concurrency,
                on_conflict: s.on_conflict.unwrap_or_default(),
                deletes: s.deletes.unwrap_or_default(),
                keep_versions_days,
                mode: s.mode.unwrap_or_default(),
                pull_interval,
            },
            dirs,
        })
    }

    /// Directory holding the state indexes and the lock.
    pub fn state_dir(&self) -> &Path {
        &self.dirs.state_dir
    }
}

/// Parse TOML, turning serde's message into one line that names the key and the line.
pub fn parse_raw(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let mut message = e.message().trim().to_string();
        if let Some(span) = e.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            if let Some(key) = key_at(text, span.start)
                && !message.contains(&format!("`{key}`"))
            {
                message = format!("`{key}`: {message}");
            }
            message = format!("{message} (line {line})");
        }
        ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        }
    })
}

/// The dotted key whose line holds byte `offset` (`sync.debounce_ms`), for error messages.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') || line.find('=').is_none() {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

fn expand_home(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

/// What is wrong with `remote.url` (never the secret in it).
#[derive(Debug, thiserror::Error)]
pub enum RemoteUrlError {
    #[error("a directory remote needs an absolute path, like file:///srv/devlog (got {0})")]
    RelativeDirectory(String),
    /// What `remote/azure/location.rs` found wrong with an Azure URL.
    #[error(transparent)]
    Azure(crate::remote::azure::location::UrlError),
}

/// Parse `remote.url`: an Azure container URL (with optional prefix and SAS query), an
/// emulator URL (`http://127.0.0.1:10000/devstoreaccount1/CONTAINER`), or `file:///dir`.
pub fn parse_remote_url(text: &str, home: &Path) -> Result<RemoteConfig, RemoteUrlError> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("file://") {
        let path = expand_home(rest, home);
        if !path.is_absolute() {
            return Err(RemoteUrlError::RelativeDirectory(text.to_string()));
        }
        return Ok(RemoteConfig::Directory {
            path,
            embedded_default: false,
        });
    }
    crate::remote::azure::location::parse_azure_url(text)
        .map(RemoteConfig::Azure)
        .map_err(RemoteUrlError::Azure)
}

#[cfg(unix)]
fn check_secret_file_mode(path: &Path, config: &Config) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let holds_secret = matches!(&config.remote, RemoteConfig::Azure(a) if a.sas_in_url.is_some());
    if !holds_secret {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::InsecureFile {
            path: path.to_path_buf(),
            what: "a SAS token in remote.url",
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_secret_file_mode(_: &Path, _: &Config) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Dirs {
        Dirs {
            home: "/home/u".into(),
            config_dir: "/home/u/.config/devlog".into(),
            state_dir: "/home/u/.local/state/devlog".into(),
            data_dir: "/home/u/.local/share/devlog".into(),
            runtime_dir: None,
        }
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        let path = PathBuf::from("/c.toml");
        let raw = parse_raw(&path, text)?;
        Config::from_raw(raw, path, true, dirs())
    }

    #[test]
    fn defaults_mirror_into_the_data_dir() {
        let c = load("").unwrap();
        assert_eq!(c.root, PathBuf::from("/home/u/.devlog"));
        assert_eq!(
            c.remote,
            RemoteConfig::Directory {
                path: "/home/u/.local/share/devlog/mirror".into(),
                embedded_default: true
            }
        );
        assert_eq!(c.sync.concurrency, 128);
        assert!(c.sync.adaptive_concurrency);
        assert_eq!(c.sync.debounce, Duration::from_millis(300));
        assert_eq!(c.sync.include, vec!["*.md", "*.jsonl", "*.toml"]);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = load("root = \"~/j\"\n[sync]\ndebounce = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("debounce"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_dotted_key() {
        let e = load("[sync]\nconcurrency = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sync.concurrency`"), "{e}");
    }

    #[test]
    fn concurrency_is_auto_or_a_fixed_number() {
        let c = load("[sync]\nconcurrency = \"auto\"\n").unwrap();
        assert_eq!(
            c.sync.concurrency_bound(),
            crate::remote::concurrency::Bound::Auto { max: 128 }
        );
        let c = load("[sync]\nconcurrency = 16\n").unwrap();
        assert_eq!(
            c.sync.concurrency_bound(),
            crate::remote::concurrency::Bound::Fixed(16)
        );
        let e = load("[sync]\nconcurrency = -3\n").unwrap_err().to_string();
        assert!(
            e.contains("`sync.concurrency` must be \"auto\" or a number"),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let e = load("[sync]\nconcurrency = 0\n").unwrap_err().to_string();
        assert!(e.contains("sync.concurrency"), "{e}");
        let e = load("[sync]\non_conflict = \"merge\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("on_conflict") || e.contains("merge"), "{e}");
    }

    #[test]
    fn every_number_has_bounds_named_with_the_key_and_the_range() {
        for (text, key, range) in [
            (
                "keep_versions_days = 4000000",
                "sync.keep_versions_days",
                "between 1 and 36500 days",
            ),
            (
                "keep_versions_days = 0",
                "sync.keep_versions_days",
                "between 1 and 36500 days",
            ),
            (
                "rescan_interval_s = 18446744073709551615",
                "sync.rescan_interval_s",
                "between 10 and 2592000 seconds",
            ),
            (
                "rescan_interval_s = 9",
                "sync.rescan_interval_s",
                "between 10 and 2592000 seconds",
            ),
            (
                "debounce_ms = 18446744073709551615",
                "sync.debounce_ms",
                "between 0 and 60000 milliseconds",
            ),
            (
                "max_delay_ms = 18446744073709551615",
                "sync.max_delay_ms",
                "between 0 and 3600000 milliseconds",
            ),
        ] {
            let e = load(&format!("[sync]\n{text}\n")).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(range), "{text}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let c = load("[sync]\nkeep_versions_days = 36500\nrescan_interval_s = 2592000\n").unwrap();
        assert_eq!(c.sync.keep_versions_days, 36500);
    }

    #[test]
    fn plain_http_only_to_this_machine_and_never_a_password_in_the_url() {
        for ok in [
            "http://127.0.0.1:10000/devstoreaccount1/cc1",
            "http://127.8.9.10:10000/devstoreaccount1/cc1",
            "http://[::1]:10000/devstoreaccount1/cc1",
            "http://localhost:10000/devstoreaccount1/cc1",
        ] {
            assert!(parse_remote_url(ok, Path::new("/")).is_ok(), "{ok}");
        }
        let e = parse_remote_url(
            "http://acct.blob.core.windows.net/journal?sv=1&sig=abcdefghij",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("use https://"), "{e}");
        assert!(!e.contains("abcdefghij"), "{e}");
        for bad in [
            "http://10.0.0.5:10000/devstoreaccount1/cc1",
            "http://192.168.1.2/devstoreaccount1/cc1",
        ] {
            assert!(parse_remote_url(bad, Path::new("/")).is_err(), "{bad}");
        }
        let e = parse_remote_url(
            "https://user:hunter2secret@acct.blob.core.windows.net/journal",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("USER:PASSWORD@"), "{e}");
        assert!(!e.contains("hunter2secret") && !e.contains("user:"), "{e}");
    }

    #[test]
    fn parses_azure_urls() {
        let r = parse_remote_url(
            "https://acct.blob.core.windows.net/journal/laptop/notes",
            Path::new("/h"),
        )
        .unwrap();
        let RemoteConfig::Azure(a) = r else { panic!() };
        assert_eq!(a.account, "acct");
        assert_eq!(a.container, "journal");
        assert_eq!(a.prefix, "laptop/notes");
        assert_eq!(
            a.container_url(),
            "https://acct.blob.core.windows.net/journal"
        );

        let r = parse_remote_url(
            "http://127.0.0.1:10000/devstoreaccount1/cc1?sv=1&sig=abcdefghij",
            Path::new("/h"),
        )
        .unwrap();
        let RemoteConfig::Azure(a) = r else { panic!() };
        assert_eq!(a.account, "devstoreaccount1");
        assert_eq!(
            a.container_url(),
            "http://127.0.0.1:10000/devstoreaccount1/cc1"
        );
        assert_eq!(a.sas_in_url.unwrap().expose(), "sv=1&sig=abcdefghij");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "ftp://x/y",
            "https://acct.blob.core.windows.net/",
            "https://acct.blob.core.windows.net/Bad_Name",
            "file://relative",
            "not a url",
        ] {
            assert!(parse_remote_url(bad, Path::new("/h")).is_err(), "{bad}");
        }
    }

    #[test]
    fn directory_remote_must_not_overlap_root() {
        let e = load("root = \"/j\"\n[remote]\nurl = \"file:///j/mirror\"\n").unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
    }

    #[test]
    fn identity_differs_per_container_and_prefix() {
        let a = parse_remote_url("https://a.blob.core.windows.net/cc1", Path::new("/")).unwrap();
        let b = parse_remote_url("https://a.blob.core.windows.net/cc2", Path::new("/")).unwrap();
        let c = parse_remote_url("https://a.blob.core.windows.net/cc1/p", Path::new("/")).unwrap();
        assert_ne!(a.identity(), b.identity());
        assert_ne!(a.identity(), c.identity());
    }
}
