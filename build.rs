//! Puts the git commit into `--version` (`DEVLOGD_GIT_COMMIT`): "unknown" when the source
//! is not a git checkout (a crate tarball) or git is not installed. Reruns only when HEAD
//! or the branch it points to moves.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // Only this crate's own checkout counts, never a repository it happens to sit in.
    let commit = if manifest.join(".git").exists() {
        let branch = git(&manifest, &["symbolic-ref", "-q", "HEAD"])
            .and_then(|r| git(&manifest, &["rev-parse", "--git-path", &r]))
            .map(|r| manifest.join(r))
            // A packed ref has no file yet: its directory changes when the next commit
            // writes one.
            .and_then(|r| {
                if r.exists() {
                    Some(r)
                } else {
                    r.parent().map(Path::to_path_buf)
                }
            });
        for path in [
            git(&manifest, &["rev-parse", "--git-path", "HEAD"]).map(|p| manifest.join(p)),
            branch,
            git(&manifest, &["rev-parse", "--git-path", "packed-refs"]).map(|p| manifest.join(p)),
        ]
        .into_iter()
        .flatten()
        {
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        git(&manifest, &["rev-parse", "--short=12", "HEAD"])
    } else {
        None
    };
    println!(
        "cargo:rustc-env=DEVLOGD_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
