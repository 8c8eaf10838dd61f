//! `devlog`, the journal command line, lives in the `devlogd` binary, which answers to both
//! names (busybox-style, on argv[0]: `commands::journal_cli`), so the whole program is
//! compiled and linked once. This stub, which links nothing of the crate, becomes the
//! `devlogd` installed beside it (or, failing that, the one on PATH) under its own argv[0].

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "devlog".into());
    let program = std::env::current_exe()
        .map(|exe| exe.with_file_name("devlogd"))
        .ok()
        .filter(|beside| beside.is_file())
        .unwrap_or_else(|| PathBuf::from("devlogd"));
    // Only returns on failure.
    let e = std::process::Command::new(&program)
        .arg0(&arg0)
        .args(args)
        .exec();
    eprintln!(
        "devlog: cannot run {}: {e} (devlog runs devlogd, installed beside it or on PATH)",
        program.display()
    );
    // The usage exit code (exit.rs), as for any other "cannot start".
    std::process::exit(2);
}
