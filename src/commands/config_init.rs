//! `devlogd config init [--url URL]`: the first-run path. Writes a commented `config.toml`
//! (the remote URL filled in when given, checked as the loader checks it) and a private
//! (0600) credentials template beside it, never over a file that exists, then says what to
//! do next. Nothing else is touched.

use super::{Failure, exit};
use crate::config::{Config, Dirs};
use crate::exit::ExitCode;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn run(dirs: &Dirs, explicit: Option<&Path>, url: Option<&str>) -> Result<ExitCode, Failure> {
    let config_file = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dirs.default_config_file());
    if let Some(url) = url {
        crate::config::parse_remote_url(url, &dirs.home)
            .map_err(|e| Failure::new(exit::USAGE, format!("--url: {e}")))?;
    }
    let dir = config_file.parent().unwrap_or(Path::new("."));
    crate::fsutil::private_dir_all(dir)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot create {}: {e}", dir.display())))?;
    let credentials = dir.join("credentials");
    let wrote_config = create_new(&config_file, &config_text(url), 0o600)?;
    let wrote_credentials = create_new(&credentials, CREDENTIALS_TEMPLATE, 0o600)?;
    for (wrote, path, what) in [
        (wrote_config, &config_file, "configuration"),
        (
            wrote_credentials,
            &credentials,
            "credentials template (0600)",
        ),
    ] {
        if wrote {
            println!("wrote {} ({what})", path.display());
        } else {
            println!("kept  {} (it exists; not overwritten)", path.display());
        }
    }
    // What was written must load: the same check every command makes.
    Config::load(Some(&config_file)).map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    println!("Next:");
    if url.is_none() {
        println!(
            "  1. set [remote] url in {} (without it devlogd mirrors to a directory on this machine)",
            config_file.display()
        );
    } else {
        println!("  1. the remote is set in {}", config_file.display());
    }
    println!(
        "  2. put a SAS token (sp=racwdl) in {} or in AZURE_STORAGE_SAS_TOKEN",
        credentials.display()
    );
    println!("  3. devlogd config check --online");
    println!("  4. devlogd service install");
    Ok(exit::OK)
}

/// Create `path` with `text` unless something is there; whether it was written.
fn create_new(path: &Path, text: &str, mode: u32) -> Result<bool, Failure> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => {
            return Err(Failure::new(
                exit::USAGE,
                format!("cannot create {}: {e}", path.display()),
            ));
        }
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot write {}: {e}", path.display())))?;
    Ok(true)
}

fn config_text(url: Option<&str>) -> String {
    let remote = match url {
        // TOML basic string: quotes and backslashes escaped.
        Some(u) => format!("url = \"{}\"", u.replace('\\', "\\\\").replace('"', "\\\"")),
        None => "# url = \"https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX\"   # Azure\n# url = \"file:///mnt/nas/devlog\"                                  # a directory"
            .to_string(),
    };
    format!(
        r#"# devlogd configuration (devlogd config check prints what is in effect).

# The journal (default ~/.devlog).
# root = "~/.devlog"

[remote]
# Where the journal is backed up. Without a url, devlogd mirrors into a directory on this
# machine and says so ("NOT OFF THIS MACHINE").
{remote}
# auth = "auto"    # auto (SAS or key) | entra | managed-identity

[sync]
# mode = "backup"          # "two-way": also bring other machines' changes down
# pull_interval_s = 30     # two-way: how often to look for them
# include = ["*.md", "*.jsonl", "*.toml"]
# exclude = ["target", "node_modules"]
# debounce_ms = 300
# deletes = "history"      # a local delete removes the remote copy, its content kept in the history
# keep_versions_days = 30

[alert]
# A command run when devlogd has not been backing up for after_s seconds, and once when it is
# safe again; DEVLOGD_VERDICT_STATE, DEVLOGD_VERDICT and DEVLOGD_SAFE are in its environment.
# command = 'notify-send "devlogd" "$DEVLOGD_VERDICT"'
# after_s = 300
"#
    )
}

const CREDENTIALS_TEMPLATE: &str = "# devlogd credentials (KEY=value, this file stays 0600).
# One of these, for the storage account in remote.url:
# AZURE_STORAGE_SAS_TOKEN=sv=...&ss=b&srt=sco&sp=racwdl&se=...&sig=...
# AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...
# AZURE_STORAGE_ACCOUNT_KEY=...   (the key of the account in remote.url)
";
