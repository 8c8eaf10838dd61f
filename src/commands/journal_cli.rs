//! `devlog`: write the journal that devlogd backs up. Parsing and dispatch only; the
//! journal logic is in `crate::journal`. It runs inside the `devlogd` binary, which
//! answers to both names (busybox-style, on argv[0]); the `devlog` binary only becomes
//! `devlogd` under its own name (`src/bin/devlog.rs`), so the program is linked once.

use crate::commands::{self, Failure, exit};
use crate::config::Config;
use crate::exit::ExitCode;
use crate::journal::{EditOutcome, Journal, JournalError, editor, render};
use clap::{CommandFactory, Parser, Subcommand};

/// Write and read the developer journal (~/.devlog) that devlogd backs up.
#[derive(Parser)]
#[command(name = "devlog", version = commands::docs::VERSION)]
#[command(mut_arg("config", |a| a.help("Config file (the same one devlogd reads)")))]
#[command(mut_arg("verbose", |a| a.help("More log output on stderr")))]
struct Cli {
    #[command(flatten)]
    global: commands::global_args::GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new entry (opens $VISUAL / $EDITOR unless -m is given).
    New {
        /// The entry's text.
        #[arg(short, long)]
        message: Option<String>,
        /// Choose the id (letters, digits, - and _).
        #[arg(long)]
        id: Option<String>,
        /// Tag the entry (repeatable).
        #[arg(short, long = "tag")]
        tags: Vec<String>,
    },
    /// Edit an entry in $VISUAL / $EDITOR.
    Edit {
        /// The entry's id, as `devlog new` printed it and `devlog list` shows it.
        id: String,
    },
    /// Print an entry.
    Show {
        /// The entry's id, as `devlog new` printed it and `devlog list` shows it.
        id: String,
        /// Render it for reading: title, date, tags, wrapped text.
        #[arg(long)]
        formatted: bool,
    },
    /// List entries, newest first.
    List {
        /// Only entries created on or after this date (YYYY-MM-DD, UTC).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only entries with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Print the entries as one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Push the journal: through the running daemon, or directly when none runs.
    Push {
        #[command(flatten)]
        flags: crate::push::PushFlags,
    },
    #[command(flatten)]
    Docs(commands::docs::DocsCommand),
}

/// Whether this process was started as `devlog` (argv[0]'s file name).
pub fn invoked_as_devlog() -> bool {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .is_some_and(|arg0| arg0.file_name() == Some(std::ffi::OsStr::new("devlog")))
}

/// The `devlog` command line, start to exit.
pub fn main() -> ! {
    // Before any credential is read: no secret may end up in a core dump.
    crate::machine::forbid_core_dumps();
    crate::machine::return_freed_buffers();
    let cli = Cli::parse();
    crate::ui::end_quietly_on_closed_output();
    crate::logging::init("warn", cli.global.verbose);
    let json = matches!(cli.command, Command::List { json: true, .. });
    commands::exit_with("devlog", json, run(cli));
}

fn journal_error(e: JournalError) -> Failure {
    Failure::new(exit::USAGE, e.to_string())
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if let Command::Docs(docs) = cli.command {
        return docs.run(Cli::command());
    }
    let config = Config::load(cli.global.config.as_deref())?;
    let journal = Journal::new(&config.root);
    match cli.command {
        Command::New { message, id, tags } => {
            let body = match message {
                Some(m) => m,
                None => {
                    editor::editor_command()
                        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
                    let scratch = crate::journal::scratch_file("").map_err(journal_error)?;
                    let result = editor::edit(&scratch)
                        .map_err(|e| e.to_string())
                        .and_then(|()| {
                            std::fs::read_to_string(&scratch).map_err(|e| e.to_string())
                        });
                    let _ = std::fs::remove_file(&scratch);
                    result.map_err(|e| {
                        Failure::new(exit::USAGE, format!("{e}; nothing was written"))
                    })?
                }
            };
            let (path, entry) = journal
                .create(&body, id.as_deref(), tags)
                .map_err(journal_error)?;
            println!("{}  {}", entry.front.id, path.display());
            Ok(exit::OK)
        }
        Command::Edit { id } => match journal.edit(&id).map_err(journal_error)? {
            EditOutcome::Unchanged => {
                println!("{id}: no changes");
                Ok(exit::OK)
            }
            EditOutcome::Updated(_) => {
                println!("{id}: updated");
                Ok(exit::OK)
            }
        },
        Command::Show { id, formatted } => {
            let (path, entry) = journal.find(&id).map_err(journal_error)?;
            if formatted {
                println!("{}", render::formatted(&entry, render::width()));
            } else {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Failure::new(exit::USAGE, format!("cannot read {}: {e}", path.display()))
                })?;
                print!("{text}");
            }
            Ok(exit::OK)
        }
        Command::List { since, tag, json } => {
            let since = since
                .map(|s| {
                    let format = time::macros::format_description!("[year]-[month]-[day]");
                    time::Date::parse(&s, &format).map_err(|_| {
                        Failure::new(
                            exit::USAGE,
                            format!("invalid --since `{s}`: use YYYY-MM-DD"),
                        )
                    })
                })
                .transpose()?;
            let (entries, problems) = journal.all().map_err(journal_error)?;
            for p in problems {
                eprintln!("devlog: skipping {}", crate::ui::printable(&p.to_string()));
            }
            let shown: Vec<_> = entries
                .iter()
                .filter(|(_, e)| since.is_none_or(|d| e.front.created.date() >= d))
                .filter(|(_, e)| tag.as_ref().is_none_or(|t| e.front.tags.contains(t)))
                .collect();
            if json {
                let items: Vec<serde_json::Value> = shown
                    .iter()
                    .map(|(path, e)| {
                        serde_json::json!({
                            "id": e.front.id,
                            // Another machine's version of this entry, beside it.
                            "conflict_host": crate::journal::conflict_file_host(path),
                            "kept_local_copy": crate::journal::is_kept_local_copy(path),
                            "created": crate::journal::entry::timestamp(e.front.created),
                            "updated": crate::journal::entry::timestamp(e.front.updated),
                            "tags": e.front.tags,
                            "title": e.title(),
                            "path": path.strip_prefix(journal.root()).unwrap_or(path),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else {
                let hosts: Vec<Option<String>> = shown
                    .iter()
                    .map(|(p, _)| crate::journal::other_version_label(p))
                    .collect();
                let list: Vec<render::Row> = (shown.iter().zip(&hosts))
                    .map(|((_, e), h)| (e, h.as_deref()))
                    .collect();
                // Titles and tags may have come down from the remote: shown escaped.
                let table = render::table(&list, render::width());
                print!("{}", crate::redact::printable_lines(&table));
            }
            Ok(exit::OK)
        }
        Command::Push { flags } => {
            let runtime = commands::runtime()?;
            let args = commands::push::PushArgs { flags, json: false };
            let unlocked = runtime.block_on(commands::push::unlocked_remote(&config, true))?;
            match commands::push::route(&config)? {
                commands::push::Route::Daemon { socket } => {
                    eprintln!(
                        "Pushing through the running devlogd ({}).",
                        socket.display()
                    );
                    runtime.block_on(commands::push::forward(&config, &args))
                }
                commands::push::Route::Direct(_lock) => {
                    eprintln!("No devlogd running: pushing directly.");
                    runtime.block_on(commands::push::run_direct(&config, unlocked, &args))
                }
            }
        }
        Command::Docs(_) => Ok(exit::OK),
    }
}
