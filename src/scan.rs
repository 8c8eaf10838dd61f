//! Walk the root (or just the paths a daemon batch names) and `stat` each candidate.
//!
//! Produces [`LocalFile`]s with `/`-separated relative paths, sizes and mtimes in
//! nanoseconds; the planner compares those with the state index. Symlinks are never
//! followed, so nothing outside the root is read. Problems with single entries (an
//! unreadable directory, a name that is not UTF-8) are collected, not fatal.

use crate::filter::Filter;
use std::path::Path;
use std::sync::Mutex;

/// One candidate file as seen on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Relative path with `/` separators; also the blob name below the prefix.
    pub rel: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl LocalFile {
    pub fn from_meta(rel: String, meta: &std::fs::Metadata) -> Self {
        let (size, mtime_ns) = stat_of(meta);
        LocalFile {
            rel,
            size,
            mtime_ns,
            ctime_ns: ctime_of(meta),
        }
    }
}

/// A path that could not be scanned, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanIssue {
    pub rel: String,
    pub message: String,
    /// The error can clear by itself (out of descriptors, …): try the path again later.
    pub transient: bool,
}

#[derive(Debug, Default)]
pub struct ScanResult {
    pub files: Vec<LocalFile>,
    pub issues: Vec<ScanIssue>,
}

/// Size and mtime (ns) from metadata.
pub fn stat_of(meta: &std::fs::Metadata) -> (u64, i64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (
            meta.len(),
            meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
        )
    }
    #[cfg(not(unix))]
    {
        let ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        (meta.len(), ns)
    }
}

/// Inode change time (ns); 0 where the platform has none.
pub fn ctime_of(meta: &std::fs::Metadata) -> i64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// Walk the whole root. A missing root is an empty scan with one issue.
pub fn scan_root(root: &Path, filter: &Filter) -> ScanResult {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return ScanResult {
                files: vec![],
                issues: vec![ScanIssue {
                    rel: String::new(),
                    message: format!("the journal root {} is not a directory", root.display()),
                    transient: false,
                }],
            };
        }
        Err(e) => {
            return ScanResult {
                files: vec![],
                issues: vec![ScanIssue {
                    rel: String::new(),
                    message: format!("cannot read the journal root {}: {e}", root.display()),
                    transient: crate::fsutil::is_transient_io(&e),
                }],
            };
        }
    }
    walk(root, root, filter)
}

/// Stat just these relative paths; a directory among them is walked whole (a new
/// directory's files may predate its watch). Vanished paths are skipped silently.
pub fn scan_paths(root: &Path, filter: &Filter, rels: &[String]) -> ScanResult {
    let mut result = ScanResult::default();
    for rel in rels {
        if behind_symlink(root, rel) {
            continue; // symlinks are never followed out of (or around) the root
        }
        let abs = root.join(rel);
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                result.issues.push(ScanIssue {
                    rel: rel.clone(),
                    message: e.to_string(),
                    transient: crate::fsutil::is_transient_io(&e),
                });
                continue;
            }
        };
        if meta.is_dir() {
            if !rel.is_empty() && !filter.accepts_dir(rel) {
                continue;
            }
            let sub = walk(root, &abs, filter);
            result.files.extend(sub.files);
            result.issues.extend(sub.issues);
        } else if meta.is_file() && filter.accepts_path(rel) {
            result.files.push(LocalFile::from_meta(rel.clone(), &meta));
        }
    }
    result.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    result.files.dedup_by(|a, b| a.rel == b.rel);
    result
}

/// Whether a directory above `rel` is a symlink.
fn behind_symlink(root: &Path, rel: &str) -> bool {
    let mut end = 0;
    while let Some(pos) = rel[end..].find('/') {
        let dir = root.join(&rel[..end + pos]);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
        end += pos + 1;
    }
    false
}

pub use crate::fsutil::relative;

fn walk(root: &Path, start: &Path, filter: &Filter) -> ScanResult {
    let files = Mutex::new(Vec::new());
    let issues = Mutex::new(Vec::new());
    let dir_filter = filter.clone();
    let dir_root = root.to_path_buf();
    let walker = ignore::WalkBuilder::new(start)
        .standard_filters(false)
        .follow_links(false)
        .threads(2)
        .filter_entry(move |entry| {
            if entry.depth() == 0 || !entry.file_type().is_some_and(|t| t.is_dir()) {
                return true;
            }
            match relative(&dir_root, entry.path()) {
                Ok(rel) => !dir_filter.skip_dir(&rel),
                Err(_) => true, // reported when its files are visited
            }
        })
        .build_parallel();
    walker.visit(&mut SinkBuilder {
        root,
        filter,
        files: &files,
        issues: &issues,
    });
    let mut files = files.into_inner().unwrap_or_else(|p| p.into_inner());
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    ScanResult {
        files,
        issues: issues.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

/// Makes one [`Sink`] per walker thread.
struct SinkBuilder<'s> {
    root: &'s Path,
    filter: &'s Filter,
    files: &'s Mutex<Vec<LocalFile>>,
    issues: &'s Mutex<Vec<ScanIssue>>,
}

impl<'s> ignore::ParallelVisitorBuilder<'s> for SinkBuilder<'s> {
    fn build(&mut self) -> Box<dyn ignore::ParallelVisitor + 's> {
        Box::new(Sink {
            root: self.root,
            filter: self.filter,
            files: self.files,
            issues: self.issues,
            local_files: Vec::new(),
            local_issues: Vec::new(),
        })
    }
}

/// Collects one walker thread's results locally and hands them over once, on drop.
struct Sink<'s> {
    root: &'s Path,
    filter: &'s Filter,
    files: &'s Mutex<Vec<LocalFile>>,
    issues: &'s Mutex<Vec<ScanIssue>>,
    local_files: Vec<LocalFile>,
    local_issues: Vec<ScanIssue>,
}

impl ignore::ParallelVisitor for Sink<'_> {
    fn visit(&mut self, entry: Result<ignore::DirEntry, ignore::Error>) -> ignore::WalkState {
        visit(
            self.root,
            self.filter,
            entry,
            &mut self.local_files,
            &mut self.local_issues,
        );
        ignore::WalkState::Continue
    }
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        if let Ok(mut f) = self.files.lock() {
            f.append(&mut self.local_files);
        }
        if let Ok(mut i) = self.issues.lock() {
            i.append(&mut self.local_issues);
        }
    }
}

fn visit(
    root: &Path,
    filter: &Filter,
    entry: Result<ignore::DirEntry, ignore::Error>,
    files: &mut Vec<LocalFile>,
    issues: &mut Vec<ScanIssue>,
) {
    let entry = match entry {
        Ok(e) => e,
        Err(err) => {
            let rel = err_path(&err)
                .and_then(|p| relative(root, p).ok())
                .unwrap_or_default();
            let transient = err.io_error().is_some_and(crate::fsutil::is_transient_io);
            issues.push(ScanIssue {
                rel,
                message: err.to_string(),
                transient,
            });
            return;
        }
    };
    if !entry.file_type().is_some_and(|t| t.is_file()) {
        return; // directories, symlinks, sockets: not synced
    }
    let rel = match relative(root, entry.path()) {
        Ok(rel) => rel,
        Err(e) => {
            issues.push(ScanIssue {
                rel: entry.path().to_string_lossy().into_owned(),
                message: e.to_string(),
                transient: false,
            });
            return;
        }
    };
    if !filter.accepts_file(&rel) {
        return;
    }
    match entry.metadata() {
        Ok(meta) => files.push(LocalFile::from_meta(rel, &meta)),
        Err(e) => {
            // Vanished between readdir and stat: nothing to push.
            if e.io_error()
                .is_none_or(|io| io.kind() != std::io::ErrorKind::NotFound)
            {
                let transient = e.io_error().is_some_and(crate::fsutil::is_transient_io);
                issues.push(ScanIssue {
                    rel,
                    message: e.to_string(),
                    transient,
                });
            }
        }
    }
}

fn err_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } => err_path(err),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_EXCLUDE, DEFAULT_INCLUDE};

    fn filter(root: &Path) -> Filter {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Filter::new(root, &s(DEFAULT_INCLUDE), &s(DEFAULT_EXCLUDE)).unwrap()
    }

    #[test]
    fn walks_candidates_only_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("a/b/x.md"), "x").unwrap();
        std::fs::write(root.join("top.toml"), "t = 1").unwrap();
        std::fs::write(root.join("a/skip.png"), "p").unwrap();
        std::fs::write(root.join(".git/c.md"), "c").unwrap();
        std::fs::write(root.join("target/t.md"), "t").unwrap();
        std::fs::write(dir.path().join("outside.md"), "o").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.md"), root.join("link.md")).unwrap();
        let r = scan_root(&root, &filter(&root));
        let names: Vec<_> = r.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(names, vec!["a/b/x.md", "top.toml"]);
        assert_eq!(r.files[0].size, 1);
        assert!(r.files[0].mtime_ns > 0);
        assert!(r.issues.is_empty(), "{:?}", r.issues);
    }

    #[test]
    fn scan_paths_stats_named_files_and_walks_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("new/deep")).unwrap();
        std::fs::write(root.join("new/deep/a.md"), "a").unwrap();
        std::fs::write(root.join("b.md"), "bb").unwrap();
        std::fs::write(root.join("c.png"), "c").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.md"), "outside").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linked")).unwrap();
        let rels = [
            "new",
            "b.md",
            "c.png",
            "gone.md",
            "b.md",
            "linked/secret.md",
            "linked",
        ]
        .map(String::from);
        let r = scan_paths(root, &filter(root), &rels);
        let names: Vec<_> = r.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(names, vec!["b.md", "new/deep/a.md"]);
    }

    #[test]
    fn missing_root_is_an_issue_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nope");
        let r = scan_root(&root, &filter(&root));
        assert!(r.files.is_empty());
        assert!(r.issues[0].message.contains("cannot read the journal root"));
    }
}
