//! `devlogd history PATH`: every version of one file on the remote, oldest first.

use super::{Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::history::{self, Version};
use crate::remote::retry::RetryPolicy;
use crate::ui::{human_bytes, printable};

pub async fn run(config: &Config, path: &str, json: bool) -> Result<ExitCode, Failure> {
    let remote = crate::session::open_remote(config)
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    crate::session::ready(remote.as_ref(), false).await?;
    let rel = super::journal_path::resolve(config, path)?;
    if let Some(file) = local_file_below(config, &rel) {
        return Err(a_directory(&rel, path, file));
    }
    let retry = RetryPolicy::default();
    let failed = |e: crate::remote::RemoteError| match e {
        crate::remote::RemoteError::Auth { .. } => super::listing_failure(remote.as_ref(), e),
        e => Failure::new(
            exit::FILES_FAILED,
            format!("cannot read the history from {}: {e}", remote.describe()),
        ),
    };
    let kept = retry
        .run(|| remote.list_history(Some(&rel)))
        .await
        .map_err(failed)?;
    // Versions of this very path only (not of paths below it, if it was a directory).
    let kept: Vec<_> = kept
        .into_iter()
        .filter(|b| history::original_path(&b.name) == Some(rel.as_str()))
        .collect();
    let current: Vec<_> = retry
        .run(|| remote.head(&rel))
        .await
        .map_err(failed)?
        .into_iter()
        .collect();
    let versions: Vec<Version> = history::versions(&current, &kept)
        .remove(&rel)
        .unwrap_or_default();
    if versions.is_empty() {
        // Gone here but on the remote: a directory if blobs are below it.
        let below = format!("{rel}/");
        let listed = retry.run(|| remote.list()).await.map_err(failed)?;
        let first = (listed.into_iter())
            .filter_map(|b| b.name.strip_prefix(&below).map(str::to_string))
            .min();
        if first.is_some() {
            return Err(a_directory(&rel, path, first));
        }
    }
    if json {
        let object = serde_json::json!({ "path": rel, "versions": versions });
        println!("{}", super::to_json(&object));
    } else if versions.is_empty() {
        println!("{}: no versions on {}", printable(&rel), remote.describe());
    } else {
        println!("{} on {}:", printable(&rel), remote.describe());
        println!(
            "  {:<35} {:<35} {:>9}  {:<32}  writer",
            "written", "replaced", "size", "md5"
        );
        for v in &versions {
            println!(
                "  {:<35} {:<35} {:>9}  {:<32}  {}",
                printable(v.written.as_deref().unwrap_or("?")),
                if v.current {
                    "(current)".into()
                } else {
                    printable(v.replaced.as_deref().unwrap_or("?"))
                },
                human_bytes(v.size),
                printable(v.md5.as_deref().unwrap_or("-")),
                // The host its writer named, beside the id that proves it.
                match (&v.host, &v.writer) {
                    (Some(h), Some(w)) => format!("{} ({})", printable(h), printable(w)),
                    (None, Some(w)) => printable(w).into_owned(),
                    _ => "-".to_string(),
                },
            );
        }
        println!(
            "Bring one back with: devlogd restore --at <time it was current> {}",
            printable(&rel)
        );
    }
    Ok(if versions.is_empty() {
        exit::FILES_FAILED
    } else {
        exit::OK
    })
}

/// `rel` is a directory here: `Some` with the name of the first file in it (not a hidden
/// one), if it has one; `None` when it is not a directory.
fn local_file_below(config: &Config, rel: &str) -> Option<Option<String>> {
    let dir = config.root.join(rel);
    if !std::fs::symlink_metadata(&dir).ok()?.is_dir() {
        return None;
    }
    let first = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .min();
    Some(first)
}

/// History takes one file: say so, with `file` below the directory `rel` as the example,
/// written as the user wrote the directory (`arg`), so that it works from where they are.
fn a_directory(rel: &str, arg: &str, file: Option<String>) -> Failure {
    let example = format!(
        "{}/{}",
        arg.trim_end_matches('/'),
        file.as_deref().unwrap_or("<file>")
    );
    Failure::new(
        exit::USAGE,
        format!(
            "{} is a directory: history shows one file's versions, e.g. devlogd history {}",
            printable(rel),
            printable(&example)
        ),
    )
}
