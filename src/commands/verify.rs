//! `devlogd verify`: compare local files with the remote by MD5.

use super::{Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::ui;

pub async fn run(config: &Config, json: bool) -> Result<ExitCode, Failure> {
    let session = crate::session::Session::open(config.clone())?;
    crate::session::ready(session.remote.as_ref(), false).await?;
    let flagged = session.conflict_paths();
    let crate::session::Session { filter, remote, .. } = session;
    let mut report = crate::verify::verify(&config.root, &filter, remote.as_ref())
        .await
        .map_err(|e| super::listing_failure(remote.as_ref(), e))?;
    report.separate_conflicts(&flagged);
    if json {
        println!("{}", super::to_json(&report));
    } else {
        println!(
            "{}",
            ui::verify_summary(
                &report,
                &config.root.display().to_string(),
                &remote.describe()
            )
        );
    }
    Ok(if report.all_match() {
        exit::OK
    } else {
        exit::FILES_FAILED
    })
}
