//! Which blob name a path is stored under when the journal is encrypted, and back.
//!
//! A journal path is encrypted segment by segment ([`Keys::encrypt_name`]); a version in
//! the history area keeps the history directory and its version leaf (an ETag and a writer
//! id, no file text) around its encrypted path; the remote's own small blobs directly in
//! the history area (`.devlog-history/.changed`, the key blob) are not journal files and
//! keep their names.

use crate::remote::crypt::{Keys, encrypted_segment_len};
use crate::remote::history_name::{HISTORY_DIR, is_history, parse_version_name};

/// Longest name a file system gives one directory entry: every encrypted segment must fit,
/// so an encrypted journal moves between remotes (the directory remote has this limit).
const SEGMENT_MAX: usize = 255;

/// Longest blob name the service takes (prefix included).
const NAME_MAX: usize = 1024;

/// A blob the remote keeps for itself, directly in the history area: stored as named.
pub fn is_reserved(name: &str) -> bool {
    name.strip_prefix(HISTORY_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|leaf| leaf.starts_with('.') && !leaf.contains('/'))
}

/// The stored name of `name` (a journal path or a version name in the history area), or
/// why it has none: a segment or the whole too long once encrypted.
pub fn encrypt(keys: &Keys, name: &str, prefix_len: usize) -> Result<String, String> {
    if is_reserved(name) {
        return Ok(name.to_string());
    }
    let (path, version_leaf) = split_history(name);
    if let Some(long) = path
        .split('/')
        .find(|seg| encrypted_segment_len(seg.len()) > SEGMENT_MAX)
    {
        return Err(format!(
            "the name \"{}\" is {} bytes: encrypted it would be longer than the {SEGMENT_MAX} bytes a file name may have; shorten it (to at most 127 bytes)",
            crate::redact::printable(long),
            long.len()
        ));
    }
    let encrypted = keys.encrypt_name(path);
    let stored = match version_leaf {
        Some(leaf) => format!("{HISTORY_DIR}/{encrypted}/{leaf}"),
        None => encrypted,
    };
    if prefix_len + stored.len() > NAME_MAX {
        return Err(format!(
            "the path \"{}\" is too long once encrypted ({} characters with the prefix, the service takes {NAME_MAX}); shorten it",
            crate::redact::printable(path),
            prefix_len + stored.len()
        ));
    }
    Ok(stored)
}

/// The name a stored blob had before it was encrypted; `None` for a blob this key did not
/// write (in clear, another key's, planted, damaged).
pub fn decrypt(keys: &Keys, stored: &str) -> Option<String> {
    if is_reserved(stored) {
        return None;
    }
    if is_history(stored) {
        let (path, _, _) = parse_version_name(stored)?;
        let leaf = stored.rsplit('/').next()?;
        return Some(format!("{HISTORY_DIR}/{}/{leaf}", keys.decrypt_name(path)?));
    }
    keys.decrypt_name(stored)
}

/// A journal path and, for a version in the history area, its version leaf.
fn split_history(name: &str) -> (&str, Option<&str>) {
    match parse_version_name(name) {
        Some((path, _, _)) => (path, name.rsplit('/').next()),
        None => (name, None),
    }
}

/// The journal path a (decrypted) name belongs to: its own, or a version's original.
pub fn journal_path(name: &str) -> &str {
    split_history(name).0
}
