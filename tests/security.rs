//! What another local user, a hostile remote or the network must not be able to do,
//! driven through the real binary.

mod common;

use common::TestEnv;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A journal pushing into a configured directory remote at `root/shared` (a group folder
/// or NAS mount others can write to).
fn shared_mirror() -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    let shared = env.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    env.write_config(&format!("[remote]\nurl = \"file://{}\"\n", shared.display()));
    (env, shared)
}

fn push(env: &TestEnv) -> common::RunOutput {
    env.run_with_timeout(&["push"], Duration::from_secs(60))
}

#[test]
fn a_symlinked_directory_in_the_remote_does_not_redirect_writes() {
    let (env, shared) = shared_mirror();
    let elsewhere = env.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, shared.join("notes")).unwrap();
    env.write_file("notes/today.md", b"journal text\n");
    env.write_file("other.md", b"other\n");
    let out = push(&env);
    out.assert_code(1);
    assert!(
        out.stdout.contains("symlink is in the way"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "a write went through the link"
    );
    assert_eq!(std::fs::read(shared.join("other.md")).unwrap(), b"other\n");
}

#[test]
fn a_symlink_at_the_lock_file_creates_nothing_at_its_target() {
    let (env, shared) = shared_mirror();
    let target = env.root().join("created-by-devlogd");
    std::os::unix::fs::symlink(&target, shared.join(".devlogd.lock")).unwrap();
    env.write_file("a.md", b"a\n");
    let out = push(&env);
    out.assert_code(1);
    assert!(!target.exists(), "the lock symlink was followed");
}

#[test]
fn a_symlink_or_fifo_in_place_of_a_blob_is_replaced_not_followed_and_hangs_nothing() {
    let (env, shared) = shared_mirror();
    let victim = env.root().join("victim.txt");
    std::fs::write(&victim, b"the owner's other file\n").unwrap();
    std::os::unix::fs::symlink(&victim, shared.join("linked.md")).unwrap();
    let fifo = shared.join("fifo.md");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    env.write_file("linked.md", b"journal one\n");
    env.write_file("fifo.md", b"journal two\n");
    let out = push(&env);
    out.assert_code(0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"the owner's other file\n");
    for (name, want) in [("linked.md", "journal one\n"), ("fifo.md", "journal two\n")] {
        let p = shared.join(name);
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file(), "{name}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), want);
    }
    // verify reads the remote the same way, and agrees.
    env.run_with_timeout(&["verify"], Duration::from_secs(60))
        .assert_code(0);
}

/// Files below `dir` that are not regular files or directories, or are symlinks.
fn links_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                out.push(e.path());
            } else if t.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_symlink_at_an_old_style_temporary_name_is_never_written_through() {
    // Older versions wrote to `.NAME.devlogd-tmp-PID-N` next to the blob: another user
    // could plant links at the next names. Whatever is planted there is left alone.
    let (env, shared) = shared_mirror();
    let victim = env.root().join("victim.txt");
    std::fs::write(&victim, b"untouched\n").unwrap();
    for pid in 1..200 {
        for n in 0..3 {
            let _ = std::os::unix::fs::symlink(
                &victim,
                shared.join(format!(".a.md.devlogd-tmp-{pid}-{n}")),
            );
        }
    }
    env.write_file("a.md", b"journal\n");
    push(&env).assert_code(0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched\n");
    assert_eq!(std::fs::read(shared.join("a.md")).unwrap(), b"journal\n");
    assert_eq!(links_below(&shared).len(), 199 * 3, "the planted links stay links");
}
