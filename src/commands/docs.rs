//! `completions SHELL` and `man DIR` for both binaries, generated from their clap
//! definitions, so they never drift from `--help`.

use super::{Failure, exit};
use crate::exit::ExitCode;
use std::io::Write;
use std::path::Path;

/// The version line both binaries print: the crate version and the git commit it was built
/// from ("unknown" outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DEVLOGD_GIT_COMMIT"),
    ")"
);

/// `completions` and `man`: the same two subcommands in both binaries, each generated from
/// the command line it is flattened into.
#[derive(clap::Subcommand)]
pub enum DocsCommand {
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to print the script for.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (one for the command, one per subcommand) into DIR.
    Man {
        /// The directory to write them into (made if missing), e.g. ~/.local/share/man/man1.
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
}

impl DocsCommand {
    /// Run it for the command line `cmd`.
    pub fn run(self, cmd: clap::Command) -> Result<ExitCode, Failure> {
        match self {
            DocsCommand::Completions { shell } => completions(cmd, shell),
            DocsCommand::Man { dir } => man(cmd, &dir),
        }
    }
}

/// Write the completion script for `shell` to stdout.
pub fn completions(
    mut cmd: clap::Command,
    shell: clap_complete::Shell,
) -> Result<ExitCode, Failure> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot write the completions: {e}")))?;
    Ok(exit::OK)
}

/// Write `NAME.1` and one page per subcommand (`NAME-SUB.1`, `NAME-SUB-SUBSUB.1`) into
/// `dir`, creating it; the names of the pages written, in order.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<String>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot create {}: {e}", dir.display())))?;
    let mut cmd = cmd;
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, cmd.get_name(), dir, &mut written)?;
    Ok(written)
}

fn write_page(
    cmd: &clap::Command,
    page: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> Result<(), Failure> {
    let file_name = format!("{page}.1");
    let path = dir.join(&file_name);
    // The page's title is its full name (`devlogd-ctl-status`), as git and cargo do.
    let titled = cmd.clone().name(page.to_string());
    let text = render_page(titled, page)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot render {file_name}: {e}")))?;
    std::fs::write(&path, text)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot write {}: {e}", path.display())))?;
    written.push(file_name);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_page(sub, &format!("{page}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// clap_mangen's sections, but our SYNOPSIS (with each option's value), then ours.
fn render_page(cmd: clap::Command, page: &str) -> std::io::Result<Vec<u8>> {
    let has_arguments = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().any(|c| !c.is_hide_set());
    let has_extra = cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some();
    let has_version = cmd.get_version().is_some() || cmd.get_long_version().is_some();
    let synopsis = super::man_sections::synopsis(&cmd, &page.replace('-', " "));
    let man = clap_mangen::Man::new(cmd);
    let mut text = Vec::new();
    man.render_title(&mut text)?;
    man.render_name_section(&mut text)?;
    text.extend_from_slice(synopsis.as_bytes());
    man.render_description_section(&mut text)?;
    if has_arguments {
        man.render_options_section(&mut text)?;
    }
    if has_subcommands {
        man.render_subcommands_section(&mut text)?;
    }
    if has_extra {
        man.render_extra_section(&mut text)?;
    }
    if has_version {
        man.render_version_section(&mut text)?;
    }
    text.extend_from_slice(super::man_sections::render(page).as_bytes());
    Ok(text)
}

/// `man DIR`: write the pages and say where they went.
pub fn man(cmd: clap::Command, dir: &Path) -> Result<ExitCode, Failure> {
    let pages = man_pages(cmd, dir)?;
    for page in &pages {
        println!("{}", dir.join(page).display());
    }
    Ok(exit::OK)
}
