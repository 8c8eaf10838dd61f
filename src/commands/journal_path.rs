//! A file named on the command line as the journal names it: relative to the root. An
//! absolute path below the root, and a path relative to the current directory when that is
//! inside the journal (`cd ~/.devlog/entries && devlogd history x.md`), are turned into it;
//! anything else is taken as relative to the root already.

use super::{Failure, exit};
use crate::config::Config;
use std::path::{Component, Path, PathBuf};

pub fn resolve(config: &Config, arg: &str) -> Result<String, Failure> {
    let bad = || {
        Failure::new(
            exit::USAGE,
            format!("{} is not a file in the journal", crate::ui::printable(arg)),
        )
    };
    let root = config
        .root
        .canonicalize()
        .unwrap_or_else(|_| config.root.clone());
    let p = Path::new(arg);
    let full: Option<PathBuf> = if p.is_absolute() {
        Some(p.to_path_buf())
    } else {
        std::env::current_dir()
            .ok()
            .and_then(|cwd| cwd.canonicalize().ok())
            .filter(|cwd| cwd.starts_with(&root))
            .map(|cwd| cwd.join(p))
    };
    let rel = match full {
        Some(full) => {
            let full = normalize(&full).ok_or_else(bad)?;
            let below = full
                .strip_prefix(&root)
                .or_else(|_| full.strip_prefix(&config.root))
                .map_err(|_| {
                    Failure::new(
                        exit::USAGE,
                        format!(
                            "{} is outside the journal {}",
                            crate::ui::printable(arg),
                            config.root.display()
                        ),
                    )
                })?;
            below.to_string_lossy().into_owned()
        }
        None => arg.trim_start_matches("./").to_string(),
    };
    if rel.is_empty()
        || rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad());
    }
    Ok(rel)
}

/// `a/./b/../c` → `a/c`, without touching the disk; `None` if `..` climbs above the top.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}
