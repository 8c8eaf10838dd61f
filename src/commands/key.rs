//! `devlogd key …`: the encryption key's blob — its passphrase changed without
//! re-encrypting anything, a recovery copy written out, a copy put back.

use super::{Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::remote::content::Content;
use crate::remote::crypt::KeyFile;
use crate::remote::encrypted::KEY_NAME;
use crate::remote::encrypted::key_blob::{keep_copy, write_private};
use crate::remote::{Precondition, Remote, RemoteError};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where `key passwd` reads the new passphrase when it is not typed at a terminal.
pub const NEW_PASSPHRASE_ENV: &str = "DEVLOG_NEW_PASSPHRASE";

#[derive(Subcommand, Debug, Clone)]
pub enum KeyCommand {
    /// Show the key: its ID (the same on every machine of this journal) and how the
    /// passphrase is stretched.
    Show,
    /// Change the passphrase: the key is wrapped again, nothing is re-encrypted. The new
    /// passphrase is read from DEVLOG_NEW_PASSPHRASE, else asked twice at the terminal.
    Passwd,
    /// Write the key blob to FILE (0600): a recovery copy. It is as safe as the
    /// passphrase; without both nothing can be decrypted.
    Export {
        /// Where to write it (never over a file that exists).
        file: PathBuf,
    },
    /// Put a recovery copy back on the remote when its key blob is missing.
    Import {
        /// A file written by `devlogd key export`.
        file: PathBuf,
    },
}

pub async fn run(config: &Config, command: &KeyCommand) -> Result<ExitCode, Failure> {
    if !config.encryption.enabled {
        return Err(Failure::usage(format!(
            "encryption is off: set enabled = true under [encryption] in {}",
            config.file.display()
        )));
    }
    let remote = crate::session::open_remote(config).map_err(|e| Failure::usage(e.to_string()))?;
    if let KeyCommand::Import { file } = command {
        return import(config, remote.as_ref(), file).await;
    }
    crate::session::ready(remote.as_ref(), false).await?;
    let (stored, etag) = fetch(remote.as_ref()).await?;
    let key = KeyFile::parse(&stored).map_err(|e| Failure::usage(e.to_string()))?;
    match command {
        KeyCommand::Show => {
            let kdf = key.kdf_params();
            println!("key        {}", key.id());
            println!(
                "passphrase argon2id, {} MiB, {} passes, {} lane(s)",
                kdf.m_kib / 1024,
                kdf.t,
                kdf.p
            );
            println!("stored at  {} ({KEY_NAME})", remote.describe());
            println!(
                "this copy  {}",
                crate::session::key_copy_path(config).display()
            );
            Ok(exit::OK)
        }
        KeyCommand::Passwd => {
            let old = (crate::session::passphrase_source(config))()
                .map_err(|m| Failure::new(exit::LOCKED, m))?;
            let new = new_passphrase()?;
            let rewrapped = key
                .rewrap(old.as_bytes(), new.as_bytes())
                .map_err(|e| Failure::new(exit::LOCKED, e.to_string()))?;
            let bytes = rewrapped.to_bytes();
            let content = Content::from_bytes(bytes.clone().into());
            match remote
                .put(KEY_NAME, &content, &Precondition::IfMatch(etag), "")
                .await
            {
                Ok(_) => {}
                Err(RemoteError::Conflict) => {
                    return Err(Failure::new(
                        exit::FILES_FAILED,
                        "the key blob changed while the passphrase was being changed (another machine?): run devlogd key passwd again",
                    ));
                }
                Err(e) => return Err(super::listing_failure(remote.as_ref(), e)),
            }
            keep_copy(&crate::session::key_copy_path(config), &bytes);
            println!(
                "Changed the passphrase of key {}. Give every machine the new passphrase (DEVLOG_PASSPHRASE or passphrase_command); recovery copies made before still open with the old one.",
                key.id()
            );
            Ok(exit::OK)
        }
        KeyCommand::Export { file } => {
            write_new_private(file, &stored)?;
            println!(
                "Wrote the key blob of key {} to {}. Keep it somewhere safe, apart from the passphrase: with both, the journal can be decrypted; with neither, nothing can.",
                key.id(),
                file.display()
            );
            Ok(exit::OK)
        }
        KeyCommand::Import { .. } => unreachable!("handled above"),
    }
}

/// The key blob and its ETag.
async fn fetch(remote: &dyn Remote) -> Result<(Vec<u8>, String), Failure> {
    let mut bytes = Vec::new();
    match remote.get(KEY_NAME, &mut bytes).await {
        Ok(Some(blob)) => Ok((bytes, blob.etag)),
        Ok(None) => Err(Failure::usage(format!(
            "{} has no key blob ({KEY_NAME}): put a recovery copy back with devlogd key import FILE",
            remote.describe()
        ))),
        Err(e) => Err(super::listing_failure(remote, e)),
    }
}

/// Put a recovery copy back: it must unlock with the passphrase, and the remote must have
/// no key blob (or this one already).
async fn import(config: &Config, remote: &dyn Remote, file: &Path) -> Result<ExitCode, Failure> {
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let key =
        KeyFile::parse(&bytes).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let pass =
        (crate::session::passphrase_source(config))().map_err(|m| Failure::new(exit::LOCKED, m))?;
    let id = key.id().to_string();
    let unlocked = {
        let pass: Zeroizing<String> = pass.clone();
        let key = KeyFile::parse(&bytes).map_err(|e| Failure::usage(e.to_string()))?;
        tokio::task::spawn_blocking(move || key.unlock(pass.as_bytes()))
            .await
            .map_err(|e| Failure::usage(e.to_string()))?
    };
    if unlocked.is_err() {
        return Err(Failure::new(
            exit::LOCKED,
            format!(
                "the passphrase does not unlock the key in {}: give the passphrase it was made with",
                file.display()
            ),
        ));
    }
    let content = Content::from_bytes(bytes.clone().into());
    match remote
        .put(KEY_NAME, &content, &Precondition::IfAbsent, "")
        .await
    {
        Ok(_) => {
            keep_copy(&crate::session::key_copy_path(config), &bytes);
            println!("Put key {id} back at {}.", remote.describe());
            Ok(exit::OK)
        }
        Err(RemoteError::Conflict) => {
            let (stored, _) = fetch(remote).await?;
            match KeyFile::parse(&stored) {
                Ok(there) if there.id() == id => {
                    println!("{} already has key {id}; nothing to do.", remote.describe());
                    Ok(exit::OK)
                }
                _ => Err(Failure::usage(format!(
                    "{} already has another key blob; nothing was replaced",
                    remote.describe()
                ))),
            }
        }
        Err(e) => Err(super::listing_failure(remote, e)),
    }
}

/// The new passphrase: from the environment, else typed twice at the terminal.
fn new_passphrase() -> Result<Zeroizing<String>, Failure> {
    if let Some(p) = std::env::var_os(NEW_PASSPHRASE_ENV).filter(|v| !v.is_empty()) {
        return p
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| Failure::usage(format!("{NEW_PASSPHRASE_ENV} is not valid UTF-8")));
    }
    let first = prompt("New passphrase: ")?;
    let second = prompt("Again: ")?;
    if first != second {
        return Err(Failure::usage(
            "the two passphrases differ; nothing was changed",
        ));
    }
    if first.is_empty() {
        return Err(Failure::usage("an empty passphrase; nothing was changed"));
    }
    Ok(first)
}

/// One line read from the terminal without echo.
fn prompt(text: &str) -> Result<Zeroizing<String>, Failure> {
    use std::io::{BufRead, Write};
    let no_terminal = || {
        Failure::usage(format!(
            "no terminal to ask for the new passphrase: set {NEW_PASSPHRASE_ENV}"
        ))
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_terminal())?;
    let before = rustix::termios::tcgetattr(&tty).map_err(|_| no_terminal())?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &quiet);
    let mut out = &tty;
    let _ = out.write_all(text.as_bytes());
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &before);
    let _ = out.write_all(b"\n");
    read.map_err(|e| Failure::usage(format!("cannot read the passphrase: {e}")))?;
    let trimmed = line.trim_end_matches(['\n', '\r']).to_string();
    Ok(Zeroizing::new(trimmed))
}

/// Write `bytes` to a new private file at `path`.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if path.exists() {
        return Err(Failure::usage(format!(
            "{} exists; nothing was written (give another FILE)",
            path.display()
        )));
    }
    write_private(path, bytes)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}
