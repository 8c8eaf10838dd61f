//! devlogd: keeps a developer journal directory backed up to Azure Blob Storage (or a
//! directory), pushing only what changed.
//!
//! Data flow: [`scan`] → [`plan`] (against [`state`]) → upload through a [`remote`] →
//! commit, all in [`push`]. The command front ends live in [`commands`].

pub mod blobname;
pub mod commands;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod filter;
pub mod fsutil;
pub mod history;
pub mod journal;
pub mod logging;
pub mod machine;
pub mod plan;
pub mod protocol;
pub mod push;
pub mod redact;
pub mod remote;
pub mod restore;
pub mod retry;
pub mod scan;
pub mod service;
pub mod state;
pub mod ui;
pub mod verify;
