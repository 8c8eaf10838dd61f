//! The flags of one push request, declared once: the command lines that push (`devlogd
//! push`, `devlogd ctl push`, `devlog push`) flatten them, the control protocol carries
//! them as they are (serde), the daemon's worker queues them, and
//! [`PushOptions`](super::PushOptions) holds them.

use crate::config::OnConflict;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::Args, Serialize, Deserialize)]
#[serde(default)]
pub struct PushFlags {
    /// Also list the remote and repair blobs that are missing or differ.
    #[arg(long)]
    pub all: bool,
    /// Upload every file, changed or not.
    #[arg(long)]
    pub force: bool,
    /// Hash every file instead of trusting size and times (finds edits whose timestamps
    /// were put back).
    #[arg(long)]
    pub checksum: bool,
    /// Show what would be uploaded; change nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// What to do when another writer changed a blob: keep-both, overwrite or skip.
    #[arg(long, value_name = "keep-both|overwrite|skip")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_conflict: Option<OnConflict>,
    /// Carry out deletes the mass-delete guard holds: more than 50 files or 10 % of the files,
    /// whichever is larger (or more than half, or all of them), deleted within an hour,
    /// earlier pushes' deletes included; or any after the journal root was replaced.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_deletes: bool,
}
