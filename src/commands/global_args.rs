//! The options every command of both binaries takes (`--config`, `-v`), declared once and
//! flattened into `devlogd`'s and `devlog`'s command lines. The help text is `devlogd`'s;
//! `devlog` words its own with `mut_arg`.

use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Config file (default: the platform config dir's devlog/config.toml; or $DEVLOG_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More log output on stderr: -v devlogd's decisions, -vv also the HTTP requests, -vvv everything; RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}
