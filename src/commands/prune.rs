//! `devlogd prune`: thin the history (every version of the last hour, one an hour for a
//! day, one a day up to `sync.keep_versions_days`, none older), by the service's clock.

use super::{Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::remote::retry::RetryPolicy;

pub async fn run(config: &Config, json: bool) -> Result<ExitCode, Failure> {
    let remote = crate::session::open_remote(config)
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    crate::session::ready(remote.as_ref(), false).await?;
    let keep = config.sync.keep_versions_days;
    let report = crate::history::prune(
        remote.as_ref(),
        keep,
        time::OffsetDateTime::now_utc(),
        RetryPolicy::default(),
    )
    .await
    .map_err(|e| {
        Failure::new(
            exit::FILES_FAILED,
            format!("cannot prune {}: {e}", remote.describe()),
        )
    })?;
    if json {
        println!("{}", super::to_json(&report));
    } else {
        println!(
            "Pruned {}: removed {} version(s) ({}): {} older than {}, {} thinned (one an hour for a day, one a day after); kept {}.",
            remote.describe(),
            report.removed,
            crate::ui::human_bytes(report.removed_bytes),
            report.expired,
            crate::verdict::days(u64::from(keep)),
            report.thinned,
            report.kept
        );
        for f in &report.failed {
            println!("  failed      {}", crate::ui::printable(f));
        }
    }
    Ok(if report.failed.is_empty() {
        exit::OK
    } else {
        exit::FILES_FAILED
    })
}
