//! Every integration test of devlogd, in one binary: one module per area (run one area with
//! `cargo test --test testsuite restore::`), the shared harness in `common`. One binary links
//! the dependency graph once instead of once per file, and its tests share one Azurite
//! (`common::Azurite::shared`, a container per test). Tests that change what the whole machine
//! sees (the inotify sysctls, mounts) hold `common::machine::exclusive` and every daemon a test
//! starts holds `common::machine::shared`, so they never overlap.

mod common;

mod cli;
mod config_online;
mod conflicts;
mod corrupt_remote;
mod credentials;
mod daemon;
mod daemon_watch;
mod data_safety;
mod delete_guard;
mod display;
mod encryption;
mod harness_smoke;
mod journal;
mod layers;
mod machine_faults;
mod pull;
mod push_cli;
mod push_conformance;
mod pushback;
mod remote_contract;
mod restore;
mod security;
mod service;
mod service_manager;
mod sync_random;
mod tell;
mod two_machines;
mod two_way;
mod untrusted_history;
mod untrusted_restore;
mod verdict;
mod walk_cli;
mod walk_config;
