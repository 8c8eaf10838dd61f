//! devlogd: keeps a developer journal directory backed up to Azure Blob Storage (or a
//! directory), pushing only what changed.
//!
//! Data flow: [`scan`] → [`plan`] (against [`state`]) → upload through a [`remote`] →
//! commit, all in [`push`]. The command front ends live in [`commands`]; the daemon in
//! [`daemon`]. ARCHITECTURE.md has the picture.
//!
//! Layers, bottom-up: a module imports only from layers below its own (checked by
//! `tests/testsuite/layers.rs`, which also checks that no import circle exists).
//!
//! 1. exit, fsutil, redact
//! 2. logging, machine, names, remote
//! 3. blobname, history, journal, state
//! 4. config
//! 5. filter
//! 6. scan
//! 7. plan, restore, sync
//! 8. conflicts, push
//! 9. pull, session, verify
//! 10. protocol
//! 11. verdict
//! 12. daemon, ui
//! 13. commands

pub mod blobname;
pub mod commands;
pub mod config;
pub mod conflicts;
pub mod daemon;
pub mod exit;
pub mod filter;
pub mod fsutil;
pub mod history;
pub mod journal;
pub mod logging;
pub mod machine;
pub mod names;
pub mod plan;
pub mod protocol;
pub mod pull;
pub mod push;
pub mod redact;
pub mod remote;
pub mod restore;
pub mod scan;
pub mod session;
pub mod state;
pub mod sync;
pub mod ui;
pub mod verdict;
pub mod verify;
