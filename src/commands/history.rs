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
    let rel = super::journal_path::resolve(config, path)?;
    let retry = RetryPolicy::default();
    let failed = |e: crate::remote::RemoteError| {
        Failure::new(
            exit::FILES_FAILED,
            format!("cannot read the history from {}: {e}", remote.describe()),
        )
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
