//! What a man page has beyond `--help`: EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES, as
//! roff appended to clap_mangen's page. One table of exit codes and one of examples per page name.

/// The roff sections for the page `page` (`devlogd`, `devlogd-push`, `devlog-new`, …).
pub fn render(page: &str) -> String {
    let mut out = String::new();
    out.push_str(".SH \"EXIT STATUS\"\n");
    let codes = exit_status(page).unwrap_or(ALL_CODES);
    for (code, meaning) in EXIT_STATUS.iter().filter(|(c, _)| codes.contains(c)) {
        out.push_str(&format!(".TP\n\\fB{code}\\fR\n{meaning}\n"));
    }
    out.push_str(".SH ENVIRONMENT\n");
    for (name, meaning) in ENVIRONMENT {
        out.push_str(&format!(".TP\n\\fB{name}\\fR\n{}\n", escape(meaning)));
    }
    out.push_str(".SH FILES\n");
    for (path, meaning) in FILES {
        out.push_str(&format!(
            ".TP\n\\fI{}\\fR\n{}\n",
            escape(path),
            escape(meaning)
        ));
    }
    out.push_str(".SH EXAMPLES\n.nf\n");
    for line in examples(page) {
        out.push_str(&escape(line));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

/// The SYNOPSIS section: `name` (`devlogd ctl status`), then every option with what it
/// takes (`--on-conflict keep-both|overwrite|skip`), the arguments and the subcommand.
pub fn synopsis(cmd: &clap::Command, name: &str) -> String {
    let mut line = format!("\\fB{}\\fR", escape(name));
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => format!("-{short}|--{long}"),
            (None, Some(long)) => format!("--{long}"),
            (Some(short), None) => format!("-{short}"),
            (None, None) => continue,
        };
        let (open, close) = if arg.is_required_set() {
            ("", "")
        } else {
            ("[", "]")
        };
        line.push_str(&format!(" {open}\\fB{}\\fR", escape(&flag)));
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        if takes_value {
            line.push_str(&format!(" \\fI{}\\fR", escape(&value_of(arg))));
        } else if matches!(arg.get_action(), clap::ArgAction::Count) {
            line.push_str("...");
        }
        line.push_str(close);
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let (open, close) = if arg.is_required_set() {
            ("", "")
        } else {
            ("[", "]")
        };
        let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        line.push_str(&format!(
            " {open}\\fI{}\\fR{close}{}",
            escape(&value_of(arg)),
            if many { "..." } else { "" }
        ));
    }
    if cmd.get_subcommands().any(|c| !c.is_hide_set()) {
        line.push_str(" \\fICOMMAND\\fR");
    }
    format!(".SH SYNOPSIS\n{line}\n")
}

/// An option's value as the user types it: its choices, or its value name.
fn value_of(arg: &clap::Arg) -> String {
    let choices: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if !choices.is_empty() {
        return choices.join("|");
    }
    arg.get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

/// Roff: a leading `.` or `'` would be a request; `-` is a hyphen unless escaped; `\` escapes.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

const EXIT_STATUS: [(&str, &str); 9] = [
    ("0", "Done: everything asked for went through."),
    (
        "1",
        "Some files failed, or the remote could not be reached; the report names them.",
    ),
    (
        "2",
        "Bad usage or configuration; the message names the fix.",
    ),
    (
        "3",
        "No daemon answered: none is running, or the one asked stopped before it answered.",
    ),
    ("4", "The remote refused the credentials."),
    ("5", "The SAS token has expired."),
    ("6", "The credentials are accepted but may not write."),
    (
        "7",
        "Encryption is on and the passphrase is missing or does not unlock the key.",
    ),
    ("130", "Stopped by Ctrl-C."),
];

const ALL_CODES: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "130"];

/// The exit codes the command of page `page` can end with (a command that asks a daemon
/// can meet 3; one that talks to the remote with the credentials 4, 5, 6 as its errors map;
/// see `crate::exit`), or `None` for a page this table does not know.
pub fn exit_status(page: &str) -> Option<&'static [&'static str]> {
    Some(match page {
        "devlogd" => ALL_CODES,
        // Push, directly or through the daemon (`push::PushError::exit_code`).
        "devlog" | "devlog-push" | "devlogd-push" => &["0", "1", "2", "3", "4", "5", "6", "7"],
        // The daemon unlocked the key when it started.
        "devlogd-ctl" | "devlogd-ctl-push" => &["0", "1", "2", "3", "4", "5", "6"],
        // The daemon's pause lease; a refused listing; Ctrl-C stops it cleanly.
        "devlogd-restore" => &["0", "1", "2", "3", "4", "7", "130"],
        "devlogd-pull" => &["0", "1", "2", "3", "4", "5", "7"],
        "devlogd-ctl-pull" => &["0", "1", "2", "3"],
        // With --resolve it pushes.
        "devlogd-conflicts" => &["0", "1", "2", "4", "5", "6", "7"],
        "devlogd-config" | "devlogd-config-check" => &["0", "1", "2", "4", "5", "6"],
        // A refused listing: 4, or 5 when the SAS has expired (`commands::listing_failure`).
        "devlogd-verify" | "devlogd-history" => &["0", "1", "2", "4", "5", "7"],
        "devlogd-prune" | "devlogd-run" => &["0", "1", "2", "7"],
        // Key commands: the passphrase, the remote's answer, a refused listing.
        "devlogd-key" | "devlogd-key-show" | "devlogd-key-passwd" | "devlogd-key-export"
        | "devlogd-key-import" => &["0", "1", "2", "4", "5", "7"],
        "devlogd-service-install" | "devlogd-service-uninstall" => &["0", "1", "2"],
        "devlogd-service" => &["0", "1", "2", "3"],
        "devlogd-service-status"
        | "devlogd-ctl-status"
        | "devlogd-ctl-pause"
        | "devlogd-ctl-resume"
        | "devlogd-ctl-reload"
        | "devlogd-ctl-stop" => &["0", "2", "3"],
        "devlog-new"
        | "devlog-edit"
        | "devlog-show"
        | "devlog-list"
        | "devlog-completions"
        | "devlog-man"
        | "devlogd-config-init"
        | "devlogd-completions"
        | "devlogd-man" => &["0", "2"],
        _ => return None,
    })
}

const ENVIRONMENT: [(&str, &str); 12] = [
    (
        "DEVLOG_CONFIG",
        "The config file to use instead of the default (as --config).",
    ),
    (
        "AZURE_STORAGE_SAS_TOKEN",
        "A SAS for the storage account in remote.url (sp=racwdl).",
    ),
    (
        "AZURE_STORAGE_CONNECTION_STRING",
        "A connection string, instead of a SAS.",
    ),
    (
        "AZURE_STORAGE_ACCOUNT_KEY",
        "The account key of the account in remote.url, instead of a SAS.",
    ),
    (
        "XDG_CONFIG_HOME, XDG_STATE_HOME, XDG_DATA_HOME",
        "Where the config, the state index and the built-in mirror live.",
    ),
    ("XDG_RUNTIME_DIR", "Where the daemon's control socket is."),
    (
        "DEVLOGD_MACHINE_ID",
        "This machine's id (default: /etc/machine-id): names its events log and its writer id.",
    ),
    (
        "DEVLOG_PASSPHRASE",
        "The passphrase that unlocks the encryption key ([encryption]); also read from the credentials file.",
    ),
    (
        "DEVLOG_NEW_PASSPHRASE",
        "The new passphrase for devlogd key passwd (else asked at the terminal).",
    ),
    ("RUST_LOG", "Log filter (as -v): e.g. devlogd=debug."),
    (
        "VISUAL, EDITOR",
        "The editor devlog new and devlog edit open.",
    ),
    (
        "TZ",
        "The time zone a bare date in restore --at is read in.",
    ),
];

const FILES: [(&str, &str); 6] = [
    (
        "~/.config/devlog/config.toml",
        "The configuration (devlogd config init writes a commented one).",
    ),
    (
        "~/.config/devlog/credentials",
        "KEY=value credentials, 0600; never read by the service manager.",
    ),
    ("~/.devlog", "The journal (root in the config)."),
    (
        "~/.local/state/devlog/",
        "The state index per remote and the instance lock.",
    ),
    (
        "~/.local/share/devlog/mirror",
        "The built-in mirror used when no remote.url is set.",
    ),
    (
        "$XDG_RUNTIME_DIR/devlog/devlogd.sock",
        "The daemon's control socket (devlogd ctl).",
    ),
];

fn examples(page: &str) -> &'static [&'static str] {
    match page {
        "devlogd" => &[
            "devlogd config init --url https://ACCOUNT.blob.core.windows.net/journal/laptop",
            "devlogd config check --online",
            "devlogd service install",
            "devlogd ctl status",
        ],
        "devlogd-push" => &[
            "devlogd push",
            "devlogd push --dry-run --json",
            "devlogd push --all --checksum      # compare everything with the remote, repair what differs",
        ],
        "devlogd-pull" => &["devlogd pull --dry-run", "devlogd pull"],
        "devlogd-restore" => &[
            "devlogd restore                                  # what is missing here",
            "devlogd restore --at 2026-12-01 --to /tmp/old    # the journal as it was then",
        ],
        "devlogd-history" => &[
            "devlogd history entries/2026/12/2026-12-03-abc.md",
            "cd ~/.devlog/entries/2026/12 && devlogd history 2026-12-03-abc.md",
        ],
        "devlogd-conflicts" => &[
            "devlogd conflicts",
            "devlogd conflicts --resolve notes.md --keep mine",
        ],
        "devlogd-config-init" => &[
            "devlogd config init",
            "devlogd config init --url file:///mnt/nas/devlog",
        ],
        "devlogd-config-check" => &[
            "devlogd config check",
            "devlogd config check --online --write-test",
        ],
        "devlogd-service-install" => &[
            "devlogd service install --dry-run",
            "devlogd service install",
        ],
        "devlogd-ctl-status" => &[
            "devlogd ctl status",
            "devlogd ctl status --json",
            "devlogd ctl status --prometheus > /var/lib/node_exporter/devlogd.prom.$$ && mv /var/lib/node_exporter/devlogd.prom.$$ /var/lib/node_exporter/devlogd.prom",
        ],
        "devlogd-completions" => &[
            "mkdir -p ~/.local/share/bash-completion/completions",
            "devlogd completions bash > ~/.local/share/bash-completion/completions/devlogd",
        ],
        "devlogd-man" => &["devlogd man ~/.local/share/man/man1"],
        "devlog" | "devlog-new" => &[
            "devlog new -m \"Fixed the flaky test\" -t ci",
            "devlog list --since 2026-12-01",
        ],
        _ => &["See --help for every option."],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_roff_and_lines_never_start_a_request() {
        let text = render("devlogd-push");
        for section in ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"] {
            assert!(
                text.contains(&format!(".SH {section}"))
                    || text.contains(&format!(".SH \"{section}\""))
            );
        }
        assert!(
            text.contains("devlogd push \\-\\-dry\\-run \\-\\-json"),
            "{text}"
        );
        assert_eq!(escape(".hidden"), "\\&.hidden");
    }
}
