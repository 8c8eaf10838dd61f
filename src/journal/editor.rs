//! Running the user's editor (`$VISUAL`, then `$EDITOR`) on a file and waiting for it.
//! The command goes through `sh`, so editors with arguments (`code --wait`) work.

use std::path::Path;
use std::process::Command;

/// The editor command, or the one-line error to show.
pub fn editor_command() -> Result<String, String> {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .ok_or_else(|| "no editor: set $VISUAL or $EDITOR (or give the text with -m)".to_string())
}

/// Open `path` in the editor; Ok when it exits 0.
pub fn edit(path: &Path) -> Result<(), String> {
    let editor = editor_command()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("devlog-editor")
        .arg(path)
        .status()
        .map_err(|e| format!("cannot run the editor `{editor}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the editor `{editor}` exited with {status}"))
    }
}
