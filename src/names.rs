//! Conflict file names, both forms: two-way sync's `NAME.sync-conflict-YYYYMMDD-HHMMSS-HOST.EXT`
//! (Syncthing's shape) and backup mode's remote copies `NAME.conflict-HOST-STAMP[-n].EXT`.
//!
//! The stamp and host come from the losing *version* (its service time, its writer's host),
//! so every machine that makes the conflict file for one version makes the same name.

use time::OffsetDateTime;

/// The longest file name (one path segment) most filesystems take, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;
const MARK: &str = ".sync-conflict-";
/// `YYYYMMDD-HHMMSS`
const STAMP_LEN: usize = 15;

/// A parsed `NAME.sync-conflict-YYYYMMDD-HHMMSS-HOST.EXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConflict {
    /// The path it is a conflict file of.
    pub original: String,
    /// `YYYYMMDD-HHMMSS`, UTC.
    pub stamp: String,
    pub host: String,
}

pub use crate::redact::{MAX_HOST_CHARS, safe_host};

/// The conflict file name for the version of `rel` stored at `service_ns` (unix ns, the
/// service's time, never a writer's) by `host`. `None` for a conflict file (never itself
/// conflicted), a name with no file segment, a time out of range, or a name that cannot fit
/// [`MAX_SEGMENT_BYTES`] even with the host cut to one character.
pub fn sync_conflict_name(rel: &str, service_ns: i128, host: &str) -> Option<String> {
    if conflict_original(rel).is_some() {
        return None;
    }
    let (dir, file) = split_dir(rel);
    if file.is_empty() {
        return None;
    }
    let (stem, ext) = split_ext(file);
    let t = OffsetDateTime::from_unix_timestamp_nanos(service_ns).ok()?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let mut host = safe_host(host);
    let fixed = stem.len() + MARK.len() + STAMP_LEN + 1 + ext.len();
    // Cut the host (ASCII: bytes are chars) rather than the stem, so the name still parses
    // back to its original.
    let room = MAX_SEGMENT_BYTES.checked_sub(fixed)?;
    if room == 0 {
        return None;
    }
    host.truncate(room);
    let host = host.trim_end_matches('-');
    let host = if host.is_empty() { "x" } else { host };
    Some(format!("{dir}{stem}{MARK}{stamp}-{host}{ext}"))
}

/// `a/n.sync-conflict-20261122-101500-laptop.md` → its parts.
pub fn parse_sync_conflict(rel: &str) -> Option<SyncConflict> {
    let (dir, file) = split_dir(rel);
    // From the right: the mark made last is the rightmost that has the shape (an extension
    // may itself start with the mark, as in `x.sync-conflict-`).
    file.rmatch_indices(MARK)
        .find_map(|(at, _)| parse_at(dir, &file[..at], &file[at + MARK.len()..]))
}

/// `stem` + mark + `rest`, where `rest` is `YYYYMMDD-HHMMSS-HOST[.EXT]`.
fn parse_at(dir: &str, stem: &str, rest: &str) -> Option<SyncConflict> {
    let b = rest.as_bytes();
    let shaped = b.len() > STAMP_LEN + 1
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..STAMP_LEN].iter().all(u8::is_ascii_digit)
        && b[STAMP_LEN] == b'-';
    if stem.is_empty() || !shaped {
        return None;
    }
    let tail = &rest[STAMP_LEN + 1..];
    let (host, ext) = match tail.find('.') {
        Some(i) => (&tail[..i], &tail[i..]),
        None => (tail, ""),
    };
    let host_ok = !host.is_empty() && host.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    let ext_ok = ext.is_empty() || (ext.len() > 1 && !ext[1..].contains('.'));
    if !host_ok || !ext_ok {
        return None;
    }
    Some(SyncConflict {
        original: format!("{dir}{stem}{ext}"),
        stamp: rest[..STAMP_LEN].to_string(),
        host: host.to_string(),
    })
}

/// The path `rel` is a conflict file of, in either form; `None` for any other name.
pub fn conflict_original(rel: &str) -> Option<String> {
    parse_sync_conflict(rel)
        .map(|c| c.original)
        .or_else(|| parse_copy_name(rel).map(|(path, _, _)| path))
}

fn split_dir(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => ("", rel),
    }
}

/// The last extension, with its dot; a dotfile's leading dot is no extension.
fn split_ext(file: &str) -> (&str, &str) {
    match file.rfind('.') {
        Some(i) if i > 0 && i + 1 < file.len() => (&file[..i], &file[i..]),
        _ => (file, ""),
    }
}

/// `notes.conflict-HOST-20261122T101500Z-2.md` → (`notes.md`, `HOST`, `2026-11-22T10:15:00Z`).
pub fn parse_copy_name(name: &str) -> Option<(String, String, String)> {
    let (dir, file) = match name.rfind('/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => ("", name),
    };
    let at = file.find(".conflict-")?;
    let (stem, rest) = (&file[..at], &file[at + ".conflict-".len()..]);
    // The host may hold '-': the stamp is found by its shape, after a '-'.
    let bytes = rest.as_bytes();
    let start = (1..rest.len()).find(|&j| bytes[j - 1] == b'-' && is_stamp(&bytes[j..]))?;
    let host = &rest[..start - 1];
    let stamp = &rest[start..start + 16];
    let mut after = &rest[start + 16..];
    if let Some(counted) = after.strip_prefix('-') {
        let digits = counted.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        after = &counted[digits..];
    }
    if stem.is_empty() || host.is_empty() || !(after.is_empty() || after.starts_with('.')) {
        return None;
    }
    let when = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    Some((format!("{dir}{stem}{after}"), host.to_string(), when))
}

/// `20261122T101500Z`
fn is_stamp(b: &[u8]) -> bool {
    b.len() >= 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}

/// `notes.sync-conflict-20261203-101500-desk.md` → `…-desk-2.md` (the host grows a number,
/// so the name still parses as a conflict file of the same path).
pub fn numbered(name: &str, n: u32) -> String {
    let (dir, file) = match name.rfind('/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => ("", name),
    };
    let after = file.find(MARK).map_or(0, |i| i + MARK.len());
    match file[after..].find('.') {
        Some(i) => format!("{dir}{}-{n}{}", &file[..after + i], &file[after + i..]),
        None => format!("{dir}{file}-{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// 2026-11-22 10:15:00 UTC
    const WHEN: i128 = 1_795_342_500_000_000_000;

    #[test]
    fn names_have_syncthings_shape() {
        for (rel, want) in [
            ("notes.md", "notes.sync-conflict-20261122-101500-laptop.md"),
            ("README", "README.sync-conflict-20261122-101500-laptop"),
            (".bashrc", ".bashrc.sync-conflict-20261122-101500-laptop"),
            (
                "a/b.c/n.tar.gz",
                "a/b.c/n.tar.sync-conflict-20261122-101500-laptop.gz",
            ),
            ("d/n.", "d/n..sync-conflict-20261122-101500-laptop"),
        ] {
            assert_eq!(
                sync_conflict_name(rel, WHEN, "laptop").as_deref(),
                Some(want),
                "{rel}"
            );
            assert_eq!(conflict_original(want).as_deref(), Some(rel), "{want}");
        }
    }

    #[test]
    fn a_conflict_file_is_never_conflicted() {
        for rel in [
            "notes.sync-conflict-20261122-101500-laptop.md",
            "d/README.sync-conflict-20261122-101500-h",
            "notes.conflict-laptop-20261122T101500Z.md",
            "n.conflict-web-01-20261122T101500Z-3.md",
        ] {
            assert!(conflict_original(rel).is_some(), "{rel}");
            assert_eq!(sync_conflict_name(rel, WHEN, "h"), None, "{rel}");
        }
    }

    #[test]
    fn look_alikes_are_not_conflict_files() {
        for rel in [
            "notes.md",
            "n.sync-conflict-2026112-101500-h.md",
            "n.sync-conflict-20261122-10150-h.md",
            "n.sync-conflict-20261122-101500-.md",
            "n.sync-conflict-20261122-101500-h_x.md",
            ".sync-conflict-20261122-101500-h.md",
            "n.sync-conflict-20261122-101500-h.a.b",
            "n.sync-conflict-20261122-101500-h.",
            "n.sync-conflict-20261122-101500",
            "sync-conflict/n.md",
        ] {
            assert_eq!(conflict_original(rel), None, "{rel}");
        }
    }

    #[test]
    fn hostile_hosts_become_one_safe_segment() {
        for host in [
            "../..",
            "a/b",
            "\u{202e}gnp.exe",
            "line\nbreak\t\0",
            "",
            "-.-",
            "ünïcödé",
            &"h".repeat(300),
        ] {
            let safe = safe_host(host);
            assert!(!safe.is_empty() && safe.len() <= MAX_HOST_CHARS, "{host:?}");
            assert!(
                safe.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
                "{host:?} → {safe:?}"
            );
            let name = sync_conflict_name("d/n.md", WHEN, host).expect("fits");
            assert!(name.starts_with("d/n.sync-conflict-") && name.ends_with(".md"));
            assert_eq!(name.matches('/').count(), 1, "{host:?} → {name:?}");
            assert_eq!(conflict_original(&name).as_deref(), Some("d/n.md"));
        }
    }

    #[test]
    fn long_names_cut_the_host_or_are_refused() {
        let stem = "é".repeat(105); // 210 bytes: room for 11 of the host
        let name = sync_conflict_name(&format!("d/{stem}.md"), WHEN, "a-long-host-name")
            .expect("room for a shorter host");
        let file = &name[2..];
        assert_eq!(file.len(), MAX_SEGMENT_BYTES, "{name}");
        let parsed = parse_sync_conflict(&name).expect("parses");
        assert_eq!(parsed.original, format!("d/{stem}.md"));
        assert_eq!(parsed.host, "a-long-host-name"[..parsed.host.len()]);
        assert_eq!(sync_conflict_name(&"x".repeat(250), WHEN, "h"), None);
        assert_eq!(sync_conflict_name(&"x".repeat(300), WHEN, "h"), None);
    }

    #[test]
    fn times_out_of_range_are_refused() {
        assert_eq!(sync_conflict_name("n.md", i128::MAX, "h"), None);
        assert_eq!(
            sync_conflict_name("n.md", -62_167_219_200_000_000_001, "h"),
            None
        );
    }

    /// Random names and hosts: every name made parses back to its original, fits a
    /// segment, keeps the directory, is not conflicted again, and is the same on every call.
    #[test]
    fn property_round_trip_over_many_names() {
        let seed = 24;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let pieces = [
            "a",
            "notes",
            ".",
            "-",
            "_",
            " ",
            "é",
            "日本",
            "\u{202e}",
            "md",
            "sync-conflict",
            ".sync-conflict-",
            "conflict-",
            "20261122",
            "-101500-",
            "x.y",
            "..",
            "T",
        ];
        let hosts = [
            "laptop",
            "../..",
            "a/b",
            "\u{202e}x",
            "\n",
            "",
            "web-01",
            "ü",
        ];
        let mut made = 0;
        for _ in 0..20_000 {
            let depth = rng.random_range(0..3);
            let mut rel = String::new();
            for _ in 0..depth {
                rel.push_str(&format!("d{}/", rng.random_range(0..3)));
            }
            for _ in 0..rng.random_range(1..8) {
                rel.push_str(pieces[rng.random_range(0..pieces.len())]);
            }
            let host = hosts[rng.random_range(0..hosts.len())];
            let when = rng.random_range(0..4_102_444_800_000_000_000i128);
            let Some(name) = sync_conflict_name(&rel, when, host) else {
                let file = rel.rsplit('/').next().unwrap_or_default();
                assert!(
                    conflict_original(&rel).is_some() || file.len() + 32 > MAX_SEGMENT_BYTES,
                    "seed {seed}: refused {rel:?}"
                );
                continue;
            };
            made += 1;
            let ctx = format!("seed {seed}: {rel:?} → {name:?}");
            assert_eq!(
                conflict_original(&name).as_deref(),
                Some(rel.as_str()),
                "{ctx}"
            );
            let (dir, file) = split_dir(&name);
            assert_eq!(dir, split_dir(&rel).0, "{ctx}");
            assert!(file.len() <= MAX_SEGMENT_BYTES, "{ctx}");
            assert_eq!(sync_conflict_name(&name, when, host), None, "{ctx}");
            assert_eq!(
                sync_conflict_name(&rel, when, host),
                Some(name.clone()),
                "{ctx}"
            );
        }
        assert!(made > 10_000, "seed {seed}: only {made} names made");
    }

    #[test]
    fn a_taken_conflict_name_grows_a_number_and_stays_a_conflict_file() {
        for (name, want) in [
            (
                "notes.sync-conflict-20261203-101500-desk.md",
                "notes.sync-conflict-20261203-101500-desk-2.md",
            ),
            (
                "a/Makefile.sync-conflict-20261203-101500-desk",
                "a/Makefile.sync-conflict-20261203-101500-desk-2",
            ),
            (
                "a.b/x.tar.sync-conflict-20261203-101500-desk.gz",
                "a.b/x.tar.sync-conflict-20261203-101500-desk-2.gz",
            ),
        ] {
            let got = numbered(name, 2);
            assert_eq!(got, want);
            let original = conflict_original(name);
            assert!(original.is_some(), "{name}");
            assert_eq!(conflict_original(&got), original, "{got}");
        }
    }
}
