//! Running the user's editor (`$VISUAL`, then `$EDITOR`) on a file and waiting for it.
//! The command goes through `sh`, so editors with arguments (`code --wait`) work.

use std::path::Path;
use std::process::{Command, ExitStatus};

/// Why the editor could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    #[error("no editor: set $VISUAL or $EDITOR (or give the text with -m)")]
    None,
    #[error("cannot run the editor `{editor}`: {source}")]
    Run {
        editor: String,
        source: std::io::Error,
    },
    #[error("the editor `{editor}` exited with {status}")]
    Exit { editor: String, status: ExitStatus },
}

/// The editor command.
pub fn editor_command() -> Result<String, EditorError> {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .ok_or(EditorError::None)
}

/// Open `path` in the editor; Ok when it exits 0.
pub fn edit(path: &Path) -> Result<(), EditorError> {
    let editor = editor_command()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("devlog-editor")
        .arg(path)
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(EditorError::Exit { editor, status }),
        Err(source) => Err(EditorError::Run { editor, source }),
    }
}
