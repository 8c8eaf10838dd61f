//! `devlog`, the journal command line, lives in the `devlogd` binary, which answers to both
//! names (busybox-style, on argv[0]: `commands::journal_cli`), so the whole program is
//! compiled and linked once. This stub, which links nothing of the crate, becomes the
//! `devlogd` installed beside it, started as `devlog` whatever this file is called. Only
//! the one beside it: a `devlogd` found elsewhere could be another version. (In a checkout,
//! `cargo build` builds both; `cargo run --bin devlog` builds only this stub.)

use std::os::unix::process::CommandExt;

fn main() {
    let program = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("devlogd"),
        Err(e) => fail(format!("cannot find where devlog is installed: {e}")),
    };
    // Only returns on failure.
    let e = std::process::Command::new(&program)
        .arg0("devlog")
        .args(std::env::args_os().skip(1))
        .exec();
    fail(format!(
        "cannot run {}: {e} (devlog runs the devlogd installed beside it: install both, e.g. `cargo install --path .`)",
        program.display()
    ))
}

fn fail(message: String) -> ! {
    eprintln!("devlog: {message}");
    // The usage exit code (exit.rs), as for any other "cannot start".
    std::process::exit(2);
}
