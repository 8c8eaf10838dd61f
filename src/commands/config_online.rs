//! `devlogd config check --online`: reach the remote with the configured credentials and
//! say what works — reachable, authenticated, container there, may write — with one exit
//! code per problem (README, "Exit codes"). Lists one page; writes and deletes nothing
//! unless `--write-test` asks for one small probe blob under the prefix.

use super::{Failure, exit};
use crate::config::{Config, RemoteConfig};
use crate::exit::ExitCode;
use crate::remote::azure::sas::SasInfo;
use crate::remote::credential::{ACCOUNT_KEY_ENV, CONNECTION_STRING_ENV, SAS_ENV};
use crate::remote::{Precondition, Remote, RemoteError};
use crate::verdict::{expiry_warning, wall_clock};

/// Azure variables devlogd reads for credentials (the Entra ones only in Entra mode).
const STORAGE_VARIABLES: [&str; 3] = [SAS_ENV, CONNECTION_STRING_ENV, ACCOUNT_KEY_ENV];
const ALL_AZURE_VARIABLES: [&str; 7] = [
    SAS_ENV,
    CONNECTION_STRING_ENV,
    ACCOUNT_KEY_ENV,
    crate::remote::credential::ACCOUNT_ENV,
    crate::remote::credential::CLIENT_ID_ENV,
    crate::remote::credential::TENANT_ID_ENV,
    crate::remote::credential::CLIENT_SECRET_ENV,
];

/// Warnings for Azure variables that are set but not used: with a directory remote all of
/// them; with Azure the storage credentials that lost to another source (`used`).
pub fn unused_azure_variables(
    remote: &RemoteConfig,
    used: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let set = |name: &&&str| env(name).is_some_and(|v| !v.trim().is_empty());
    match remote {
        RemoteConfig::Directory {
            path,
            embedded_default,
        } => ALL_AZURE_VARIABLES
            .iter()
            .filter(set)
            .map(|name| {
                let why = if *embedded_default {
                    "no remote.url is configured"
                } else {
                    "remote.url is a directory"
                };
                format!(
                    "{name} is set, but {why}: devlogd mirrors to the local directory {} and ignores it (set remote.url = \"https://ACCOUNT.blob.core.windows.net/CONTAINER\" to back up to Azure)",
                    path.display()
                )
            })
            .collect(),
        RemoteConfig::Azure(_) => STORAGE_VARIABLES
            .iter()
            .filter(set)
            .filter(|name| used.is_some_and(|u| !u.contains(**name)))
            .map(|name| {
                format!(
                    "{name} is set but not used: the credential comes from {}",
                    used.unwrap_or("elsewhere")
                )
            })
            .collect(),
    }
}

/// What the probe found, line by line, and the verdict with its exit code.
pub async fn run(config: &Config, write_test: bool) -> Result<ExitCode, Failure> {
    if let RemoteConfig::Directory {
        path,
        embedded_default,
    } = &config.remote
    {
        return directory_check(path, *embedded_default);
    }
    // Not `Session::open`: a new machine has no journal root yet (restore makes it), and
    // the plain check before this one has said so.
    let remote = crate::session::open_remote(config).map_err(|e| Failure::usage(e.to_string()))?;
    let own_writer = crate::session::own_writer(config);
    let now = crate::daemon::worker::unix_now();
    let sas = remote.features().sas.cloned();
    let expired_at = sas
        .as_ref()
        .and_then(|s| s.expires_unix)
        .filter(|&at| at <= now);
    let probed = remote.probe().await;
    let container_exists = match probed {
        Ok(p) => {
            println!("reachable      yes");
            println!("authenticated  yes");
            p.container_exists
        }
        Err(e) => return Err(probe_failure(remote.as_ref(), e, expired_at, sas, now)),
    };
    if let Some(at) = expired_at {
        // The service took it (an emulator may): it will not for long.
        return Err(expired(at, now));
    }
    if container_exists {
        println!("container      exists");
    } else if sas.as_ref().and_then(SasInfo::can_create_container) == Some(false) {
        // The first push would create it, and this token may not.
        println!("container      does not exist, and this SAS cannot create it");
        return Err(Failure::new(
            exit::NO_WRITE_PERMISSION,
            format!(
                "the container in {} does not exist and this SAS cannot create it ({}): create the container (portal, or az storage container create), or check its name in remote.url",
                remote.describe(),
                sas.as_ref()
                    .map(SasInfo::why_no_container)
                    .unwrap_or_default()
            ),
        ));
    } else {
        println!(
            "container      does not exist yet: the first push creates it (check the name in remote.url: a typo makes a new container)"
        );
    }
    if container_exists {
        encryption_check(config, remote.as_ref()).await?;
    }
    if container_exists
        && config.sync.mode == crate::config::SyncMode::Backup
        && let Some(warning) = other_writers(remote.as_ref(), own_writer.as_deref()).await
    {
        println!("WARNING: {warning}");
    }
    let mut code = exit::OK;
    let mut problem = None;
    match sas.as_ref().and_then(SasInfo::can_write) {
        Some(false) => {
            println!(
                "can write      NO: the SAS allows only sp={}",
                sas.as_ref()
                    .and_then(|s| s.permissions.clone())
                    .unwrap_or_default()
            );
            code = exit::NO_WRITE_PERMISSION;
            problem = Some(read_only(sas.as_ref()));
        }
        Some(true) if !write_test => {
            let missing = sas
                .as_ref()
                .map(SasInfo::missing_for_push)
                .unwrap_or_default();
            if missing.is_empty() {
                println!("can write      yes (the SAS allows it; --write-test to try)");
            } else {
                let missing: String = missing.into_iter().collect();
                println!(
                    "can write      yes, but the SAS lacks \"{missing}\" (devlogd needs racwdl: deletes and history pruning fail without d)"
                );
            }
        }
        None if !write_test => {
            println!("can write      not tested (--write-test puts and deletes one small blob)");
        }
        _ => {}
    }
    if write_test && code == exit::OK && !container_exists {
        // Writing would create the container: a typo in its name would become real.
        println!(
            "can write      not tested: the container does not exist yet (the first push creates it)"
        );
    } else if write_test && code == exit::OK {
        match write_probe(remote.as_ref()).await {
            Ok(()) => println!("can write      yes (a probe blob was written and deleted)"),
            Err(RemoteError::Auth { message }) => {
                println!("can write      NO: {message}");
                code = exit::NO_WRITE_PERMISSION;
                problem = Some(format!(
                    "the credentials can list but cannot write ({message}): give them write permission (a SAS needs racwdl)"
                ));
            }
            Err(e) => {
                println!("can write      NO: {e}");
                code = exit::FILES_FAILED;
                problem = Some(format!("the write test failed: {e}"));
            }
        }
    }
    if let Some(at) = sas.as_ref().and_then(|s| s.expires_unix) {
        println!("expires        {}", wall_clock(at, now));
        if let Some(warning) = expiry_warning(Some(at), now) {
            println!("WARNING: {warning}");
        }
    }
    match problem {
        Some(message) => Err(Failure::new(code, message)),
        None => {
            println!(
                "online         OK: devlogd can back up to {}",
                remote.describe()
            );
            Ok(code)
        }
    }
}

/// In backup mode, files on the prefix another machine wrote are never brought here, and
/// the two machines' pushes meet as conflicts: say so, with the hosts.
async fn other_writers(remote: &dyn Remote, own: Option<&str>) -> Option<String> {
    let listing = remote.list().await.ok()?;
    let mut hosts = std::collections::BTreeSet::new();
    let mut files = 0usize;
    for blob in &listing {
        let Some(writer) = blob.writer.as_deref() else {
            continue;
        };
        if Some(writer) != own {
            files += 1;
            hosts.insert(
                (blob.host.clone())
                    .unwrap_or_else(|| format!("writer {}", crate::redact::printable(writer))),
            );
        }
    }
    (files > 0).then(|| {
        let hosts: Vec<String> = hosts.into_iter().take(3).collect();
        format!(
            "{} holds {files} file(s) another machine wrote ({}); with sync.mode = \"backup\" they never come here and both machines' pushes meet as conflicts: set sync.mode = \"two-way\" in [sync] on every machine (or give each machine its own prefix)",
            remote.describe(),
            hosts.join(", ")
        )
    })
}

/// A directory remote: there (or the built-in mirror, made on first use), a directory, and
/// writable by this user — what a push needs, so no OK for one that would fail.
fn directory_check(path: &std::path::Path, embedded_default: bool) -> Result<ExitCode, Failure> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && embedded_default => {
            println!(
                "online         the built-in mirror {shown} is made by the first push (it is on this machine: not a backup elsewhere)"
            );
            return Ok(exit::OK);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::new(
                exit::FILES_FAILED,
                format!(
                    "the directory remote {shown} does not exist (is it mounted?); create it to start backing up there"
                ),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                exit::FILES_FAILED,
                format!("cannot read the directory remote {shown}: {e}"),
            ));
        }
        Ok(m) if !m.is_dir() => {
            return Err(Failure::new(
                exit::USAGE,
                format!(
                    "the directory remote {shown} is not a directory: set remote.url to a directory"
                ),
            ));
        }
        Ok(_) => {}
    }
    if rustix::fs::access(
        path,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .is_err()
    {
        return Err(Failure::new(
            exit::NO_WRITE_PERMISSION,
            format!(
                "the directory remote {shown} is not writable by this user: fix its permissions"
            ),
        ));
    }
    println!("reachable      yes (a directory on this machine)");
    println!("can write      yes");
    println!("online         OK: devlogd can back up to {shown}");
    Ok(exit::OK)
}

fn expired(at: i64, now: i64) -> Failure {
    Failure::new(
        exit::CREDENTIALS_EXPIRED,
        format!(
            "the SAS token expired at {} ({} ago): make a new one with a later expiry (se)",
            wall_clock(at, now),
            crate::verdict::duration((now - at) as u64)
        ),
    )
}

fn read_only(sas: Option<&SasInfo>) -> String {
    format!(
        "the credentials can read and list but cannot write: the SAS allows only sp={}; devlogd needs racwdl (read, add, create, write, delete, list)",
        sas.and_then(|s| s.permissions.clone()).unwrap_or_default()
    )
}

/// Why the probe failed, as the one line and exit code of its kind.
fn probe_failure(
    remote: &dyn Remote,
    e: RemoteError,
    expired_at: Option<i64>,
    sas: Option<SasInfo>,
    now: i64,
) -> Failure {
    match e {
        RemoteError::Auth { .. } if expired_at.is_some() => {
            println!("reachable      yes");
            println!("authenticated  NO: the SAS token has expired");
            expired(expired_at.unwrap_or(now), now)
        }
        RemoteError::Auth { message } if message.contains("AuthorizationPermissionMismatch") => {
            println!("reachable      yes");
            println!("authenticated  yes, but may not list: {message}");
            Failure::new(
                exit::NO_WRITE_PERMISSION,
                format!(
                    "the credentials are accepted but lack a permission devlogd needs ({message}){}: devlogd needs racwdl (read, add, create, write, delete, list)",
                    sas.and_then(|s| s.permissions)
                        .map(|p| format!("; the SAS allows sp={p}"))
                        .unwrap_or_default()
                ),
            )
        }
        RemoteError::Auth { message } if crate::remote::is_clock_skew(&message) => {
            println!("reachable      yes");
            println!("authenticated  NO: {message}");
            Failure::new(
                exit::AUTH,
                format!(
                    "{} refused a request from this machine: {message} (the credentials are not the problem)",
                    remote.describe()
                ),
            )
        }
        RemoteError::Auth { message } => {
            println!("reachable      yes");
            println!("authenticated  NO: {message}");
            let source = remote.credential_source();
            // "the service refused the credentials (HTTP 403 …)": keep only the status.
            let detail = message
                .strip_prefix("the service refused the credentials ")
                .map_or_else(|| format!("({message})"), str::to_string);
            Failure::new(
                exit::AUTH,
                format!(
                    "the remote refused the credentials from {source} {detail}: {}",
                    crate::push::auth_hint(&source)
                ),
            )
        }
        RemoteError::Unreachable { message } | RemoteError::Transient { message, .. } => {
            println!("reachable      NO: {message}");
            Failure::new(
                exit::FILES_FAILED,
                format!(
                    "cannot reach {} ({message}): check remote.url and the network",
                    remote.describe()
                ),
            )
        }
        other => {
            println!("reachable      yes, but: {other}");
            Failure::new(
                exit::FILES_FAILED,
                format!("{} answered with an error: {other}", remote.describe()),
            )
        }
    }
}

/// Put one small blob under the prefix, then delete exactly that version.
async fn write_probe(remote: &dyn Remote) -> Result<(), RemoteError> {
    let name = format!(".devlogd-write-test-{:016x}", rand::random::<u64>());
    let content =
        crate::remote::content::Content::from_bytes(bytes::Bytes::from_static(b"devlogd\n"));
    let put = remote
        .put(
            &name,
            &content,
            &Precondition::IfAbsent,
            "devlogd-config-check",
        )
        .await?;
    remote.delete(&name, &Precondition::IfMatch(put.etag)).await
}

/// Whether the prefix's encryption matches `[encryption]`, and the passphrase unlocks its key.
async fn encryption_check(config: &Config, remote: &dyn Remote) -> Result<(), Failure> {
    match remote.ready(false).await {
        Ok(()) if config.encryption.enabled => {
            println!("encryption     on: the passphrase unlocks the key");
        }
        Ok(()) => {}
        Err(RemoteError::Permanent { message })
            if config.encryption.enabled && message.starts_with("nothing has been pushed") =>
        {
            println!("encryption     on: no key yet (the first push makes it)");
        }
        Err(e) => {
            println!("encryption     NO: {e}");
            return crate::session::ready_failure(remote, e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn azure_variables_are_named_when_unused() {
        let env = |name: &str| (name == CONNECTION_STRING_ENV).then(|| "AccountName=a".to_string());
        let mirror = RemoteConfig::Directory {
            path: PathBuf::from("/home/u/.local/share/devlog/mirror"),
            embedded_default: true,
        };
        let w = unused_azure_variables(&mirror, None, &env);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("AZURE_STORAGE_CONNECTION_STRING is set, but no remote.url is configured: devlogd mirrors to the local directory /home/u/.local/share/devlog/mirror"),
            "{}",
            w[0]
        );
        let nothing = |_: &str| None;
        assert!(unused_azure_variables(&mirror, None, &nothing).is_empty());
    }
}
