//! `devlogd verify`: compare local files with the remote by MD5.

use super::{CliError, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::remote::RemoteError;
use crate::ui;

pub async fn run(config: &Config, json: bool) -> Result<ExitCode, CliError> {
    let session = crate::session::Session::open(config.clone())?;
    let flagged = session.conflict_paths();
    let crate::session::Session { filter, remote, .. } = session;
    let mut report = crate::verify::verify(&config.root, &filter, remote.as_ref())
        .await
        .map_err(|e| match e {
            RemoteError::Auth { message } => CliError::new(
                exit::AUTH,
                format!(
                    "{}: {message}; the credentials came from {}: {}",
                    remote.describe(),
                    remote.credential_source(),
                    crate::push::auth_hint(&remote.credential_source())
                ),
            ),
            e => CliError::new(
                exit::FILES_FAILED,
                format!("cannot list {}: {e}", remote.describe()),
            ),
        })?;
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
