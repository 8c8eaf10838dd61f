//! The activity log: one JSON line per `devlog` action that changes the journal, in
//! `events/YYYYMMDD-MACHINE.jsonl` (UTC date). One file per machine and day, so two
//! machines pushing one journal never append to (and fight over) the same blob.
//!
//! Each line is written with a single `write` on a file opened for appending, so a reader
//! (or the daemon) never sees half a line, and concurrent writers never interleave inside
//! one.

use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub time: String,
    pub action: &'a str,
    pub id: Option<&'a str>,
}

/// Append one event line for `action` on entry `id`.
pub fn append(
    root: &Path,
    action: &str,
    id: Option<&str>,
    at: OffsetDateTime,
) -> std::io::Result<()> {
    let d = at.date();
    let dir = root.join("events");
    crate::fsutil::private_dir_all(&dir)?;
    let path = dir.join(format!(
        "{:04}{:02}{:02}-{}.jsonl",
        d.year(),
        u8::from(d.month()),
        d.day(),
        machine_tag()
    ));
    let event = Event {
        time: super::entry::timestamp(at),
        action,
        id,
    };
    let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    let written = file.write(&line)?;
    if written != line.len() {
        return Err(std::io::Error::other(format!(
            "short write to {} ({written} of {} bytes)",
            path.display(),
            line.len()
        )));
    }
    Ok(())
}

/// This machine in a file name: its host name (letters, digits and `-`) and a short hash of
/// its machine id, so two machines with the same host name still differ.
pub fn machine_tag() -> String {
    machine_tag_for(
        &crate::machine::hostname(),
        &crate::machine::machine_id().unwrap_or_default(),
    )
}

/// The tag of the machine with this host name and machine id.
pub fn machine_tag_for(hostname: &str, machine_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let host: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let hash = Sha256::digest(machine_id.as_bytes());
    let short = crate::fsutil::hex(&hash[..3]);
    format!("{host}-{short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_whole_json_lines_per_utc_day() {
        let dir = tempfile::tempdir().unwrap();
        let t = time::macros::datetime!(2026-11-22 23:59:59 UTC);
        append(dir.path(), "new", Some("abc"), t).unwrap();
        append(dir.path(), "list", None, t).unwrap();
        let name = format!("events/20261122-{}.jsonl", machine_tag());
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "new");
        assert_eq!(lines[0]["id"], "abc");
        assert_eq!(lines[0]["time"], "2026-11-22T23:59:59Z");
        assert!(lines[1]["id"].is_null());
    }
}
