//! `devlogd config check`: validate the configuration and print what is in effect.
//! Secrets are shown as `***`; credentials are named by their source only.

use super::Failure;
use crate::config::{Config, RemoteConfig};
use crate::exit::ExitCode;
use crate::remote::credential;
use crate::session::filter_for;
use crate::state::StateIndex;
use std::fmt::Write as _;

pub fn run(config: &Config) -> Result<ExitCode, Failure> {
    filter_for(config)?;
    let mut credential_problem = None;
    let mut credential_used = None;
    let mut out = String::new();
    let file_note = if config.file_exists {
        "ok"
    } else {
        "not found, using defaults"
    };
    let _ = writeln!(
        out,
        "config file    {} ({file_note})",
        config.file.display()
    );
    let root_note = if config.root.is_dir() {
        ""
    } else {
        " (does not exist yet: devlogd restore or devlog new creates it)"
    };
    let _ = writeln!(out, "root           {}{root_note}", config.root.display());
    match &config.remote {
        RemoteConfig::Directory {
            path,
            embedded_default,
        } => {
            let note = if *embedded_default {
                " (the built-in mirror: no remote.url set)"
            } else {
                ""
            };
            let _ = writeln!(out, "remote         file://{}{note}", path.display());
        }
        RemoteConfig::Azure(location) => {
            let sas = if location.sas_in_url.is_some() {
                "?***"
            } else {
                ""
            };
            let _ = writeln!(out, "remote         {location}{sas}");
            let _ = writeln!(
                out,
                "account        {}  container {}  prefix {}",
                location.account,
                location.container,
                if location.prefix.is_empty() {
                    "(none)"
                } else {
                    &location.prefix
                }
            );
            let file = credential::CredentialsFile::load(&config.dirs.credentials_file());
            let cred = match file
                .map_err(|e| crate::remote::RemoteError::Permanent {
                    message: e.to_string(),
                })
                .and_then(|f| credential::resolve(location, config.auth, &f))
            {
                Ok(c) => {
                    credential_used = Some(c.source().to_string());
                    format!("{} (value ***)", c.source())
                }
                Err(e) => {
                    credential_problem = Some(e.to_string());
                    format!("none usable: {e}")
                }
            };
            let _ = writeln!(out, "auth           {}", config.auth);
            let _ = writeln!(out, "credential     {cred}");
        }
    }
    let s = &config.sync;
    let _ = writeln!(
        out,
        "mode           {}",
        s.mode.describe(Some(s.pull_interval))
    );
    let _ = writeln!(out, "encryption     {}", encryption_line(config));
    let _ = writeln!(out, "include        {}", s.include.join(", "));
    let _ = writeln!(
        out,
        "exclude        {} (and hidden files, and {})",
        s.exclude.join(", "),
        crate::filter::IGNORE_FILE
    );
    let _ = writeln!(
        out,
        "debounce       {} ms   max delay {} ms   rescan every {} s",
        s.debounce.as_millis(),
        s.max_delay.as_millis(),
        s.rescan_interval.as_secs()
    );
    let _ = writeln!(
        out,
        "concurrency    {}   on conflict {}",
        if s.adaptive_concurrency {
            format!("auto (up to {})", s.concurrency)
        } else {
            s.concurrency.to_string()
        },
        s.on_conflict
    );
    let _ = writeln!(
        out,
        "deletes        {}   keep versions {}",
        match s.deletes {
            crate::config::Deletes::History => "history",
            crate::config::Deletes::Keep => "keep",
        },
        crate::verdict::days(u64::from(s.keep_versions_days))
    );
    let _ = writeln!(
        out,
        "alert          {}",
        match &config.alert.command {
            // The program only: the rest may hold a webhook's secret.
            Some(c) => format!(
                "runs {} … when not safe for {} s",
                crate::ui::printable(c.split_whitespace().next().unwrap_or("")),
                config.alert.after.as_secs()
            ),
            None => "none ([alert] command runs one when devlogd is not backing up)".into(),
        }
    );
    let _ = write!(
        out,
        "state index    {}",
        StateIndex::path_for(config.state_dir(), &config.remote.identity()).display()
    );
    let _ = write!(
        out,
        "\ncredentials    {}{}",
        config.dirs.credentials_file().display(),
        if config.dirs.credentials_file().exists() {
            ""
        } else {
            " (none)"
        }
    );
    for warning in super::config_online::unused_azure_variables(
        &config.remote,
        credential_used.as_deref(),
        &|name| std::env::var(name).ok(),
    ) {
        let _ = write!(out, "\nWARNING: {warning}");
    }
    // The credentials file is read only for an Azure remote: with a directory, what it sets
    // is as unused as a variable would be.
    if let crate::config::RemoteConfig::Directory { .. } = &config.remote
        && let Ok(file) = credential::CredentialsFile::load(&config.dirs.credentials_file())
    {
        let in_file = |name: &str| file.get(name).map(str::to_string);
        for warning in super::config_online::unused_azure_variables(&config.remote, None, &in_file)
        {
            let warning = warning.replacen(
                " is set,",
                &format!(" is set in {},", config.dirs.credentials_file().display()),
                1,
            );
            let _ = write!(out, "\nWARNING: {warning}");
        }
    }
    println!("{out}");
    match credential_problem {
        Some(problem) => Err(Failure::new(super::exit::USAGE, problem)),
        None => Ok(super::exit::OK),
    }
}

/// `off`, or `on` and where the passphrase comes from (never the passphrase).
fn encryption_line(config: &Config) -> String {
    use crate::remote::credential::PASSPHRASE_ENV;
    if !config.encryption.enabled {
        return "off".to_string();
    }
    let from_env = std::env::var_os(PASSPHRASE_ENV).is_some_and(|v| !v.is_empty());
    let source = if from_env {
        format!("{PASSPHRASE_ENV} in the environment")
    } else if let Some(command) = &config.encryption.passphrase_command {
        format!("passphrase_command ({command})")
    } else if crate::remote::credential::CredentialsFile::load(&config.dirs.credentials_file())
        .ok()
        .is_some_and(|f| f.get(PASSPHRASE_ENV).is_some_and(|p| !p.is_empty()))
    {
        format!(
            "{PASSPHRASE_ENV} in {}",
            config.dirs.credentials_file().display()
        )
    } else {
        format!("NOT SET: give {PASSPHRASE_ENV} or passphrase_command")
    };
    format!("on, passphrase from {source}")
}
