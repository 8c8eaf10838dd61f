//! Two-way sync's pure core: what to do with one path, given the local file, the index row
//! both sides last agreed on (the base) and the remote listing. Nothing here touches a disk
//! or a network; the pull pass carries the actions out.

pub mod decide;

pub use decide::{Action, Facts, Kind, Local, Remote, decide};
