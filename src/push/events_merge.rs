//! Events logs (`events/*.jsonl`) are append-only: devlog only ever adds lines. One that
//! is shorter than the version last pushed was started again (the journal deleted and a
//! new entry written) or cut short, and pushed as it is it would put a few lines over the
//! day's log. Instead the version on the remote is fetched and the log becomes its lines
//! followed by the local lines it lacks, before the push decides: nothing is lost, and the
//! merged log goes up as an ordinary change.

use crate::fsutil::Beneath;
use crate::remote::Remote;
use crate::remote::retry::RetryPolicy;
use crate::restore::{place, temp};
use crate::scan::LocalFile;
use crate::state::IndexEntry;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, Write};

/// A log larger than this is left to the ordinary push (no events log grows so big).
const MAX_MERGE_BYTES: u64 = 64 * 1024 * 1024;

/// Whether `rel` is an events log.
fn is_events_log(rel: &str) -> bool {
    rel.strip_prefix("events/")
        .is_some_and(|name| !name.contains('/') && name.ends_with(".jsonl"))
}

/// Merge every events log among `files` that is shorter than its index row (the version
/// on the remote) with that version; the merged files' stats are updated in `files`.
pub(super) async fn merge_shrunk(
    root: &std::path::Path,
    files: &mut [LocalFile],
    index: &HashMap<String, IndexEntry>,
    remote: &dyn Remote,
    retry: RetryPolicy,
) {
    for file in files.iter_mut() {
        let Some(row) = index.get(&file.rel) else {
            continue;
        };
        if !is_events_log(&file.rel) || file.size >= row.size || row.size > MAX_MERGE_BYTES {
            continue;
        }
        match merge_one(root, file, row, remote, retry).await {
            Ok(Some(merged)) => {
                tracing::warn!(
                    path = %crate::redact::printable(&file.rel),
                    "the events log is shorter than its last pushed version: merged with it (append-only, nothing dropped)"
                );
                *file = merged;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                path = %crate::redact::printable(&file.rel),
                error = %e,
                "cannot merge the shorter events log with its last pushed version; pushed as it is"
            ),
        }
    }
}

/// `None` when the remote no longer holds the recorded version (another writer's change:
/// the push's conflict policy decides) or the local file changed meanwhile.
async fn merge_one(
    root: &std::path::Path,
    file: &LocalFile,
    row: &IndexEntry,
    remote: &dyn Remote,
    retry: RetryPolicy,
) -> std::io::Result<Option<LocalFile>> {
    let mut theirs = Vec::new();
    let mut attempt = 0;
    let got = loop {
        theirs.clear();
        match remote.get(&file.rel, &mut theirs).await {
            Err(e) if e.is_transient() && attempt + 1 < retry.max_attempts => {
                attempt += 1;
                tokio::time::sleep(retry.base * attempt).await;
            }
            other => break other.map_err(|e| std::io::Error::other(e.to_string()))?,
        }
    };
    if got.and_then(|b| b.md5) != Some(row.md5) {
        return Ok(None);
    }
    let root_dir = Beneath::open(root)?;
    let (dir_rel, name) = crate::restore::split(&file.rel);
    let dir = root_dir.open_dir(dir_rel, false)?;
    let mut old = dir.open_file(name)?;
    let before = place::Seen::of(&old.metadata()?);
    if !before.describes(file) {
        return Ok(None);
    }
    let mut ours = Vec::new();
    old.read_to_end(&mut ours)?;
    let merged = merged(&theirs, &ours);
    let (tmp_name, mut tmp) = temp::create(&dir, ".devlogd-merge-")?;
    let mut guard = temp::TempName {
        dir: &dir,
        name: &tmp_name,
        placed: false,
    };
    tmp.write_all(&merged)?;
    tmp.sync_all()?;
    if place::seen_now(&dir, name)? != Some(before) {
        return Ok(None);
    }
    dir.rename_to(&tmp_name, &dir, name)?;
    guard.placed = true;
    // A line appended to the old file between the read and the rename follows it.
    let read = ours.len() as u64;
    if old.metadata()?.len() > read {
        let mut late = Vec::new();
        old.seek(std::io::SeekFrom::Start(read))?;
        old.read_to_end(&mut late)?;
        tmp.write_all(&late)?;
    }
    dir.sync();
    Ok(Some(LocalFile::from_meta(
        file.rel.clone(),
        &tmp.metadata()?,
    )))
}

/// `theirs` line by line, then each line of `ours` it does not have, in order.
fn merged(theirs: &[u8], ours: &[u8]) -> Vec<u8> {
    let known: HashSet<&[u8]> = lines(theirs).collect();
    let mut out = theirs.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for line in lines(ours).filter(|l| !known.contains(l)) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_lines_come_first_then_the_local_lines_they_lack() {
        assert_eq!(merged(b"a\nb\nc\n", b"d\n"), b"a\nb\nc\nd\n");
        assert_eq!(merged(b"a\nb\nc\n", b"a\n"), b"a\nb\nc\n");
        assert_eq!(merged(b"a\nb", b"b\nc"), b"a\nb\nc\n");
        assert_eq!(merged(b"", b"x\n"), b"x\n");
    }

    #[test]
    fn only_events_logs_are_merged() {
        assert!(is_events_log("events/20261203-laptop-0123abcd.jsonl"));
        assert!(!is_events_log("events/sub/x.jsonl"));
        assert!(!is_events_log("entries/x.jsonl"));
        assert!(!is_events_log("events/x.md"));
    }
}
