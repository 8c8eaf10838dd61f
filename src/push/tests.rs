//! The pipeline in process: the directory remote behind a wrapper that counts writes and
//! runs a hook as each starts.

use super::*;
use crate::remote::directory::DirectoryRemote;
use crate::remote::{Precondition, Put, PutOutcome, RemoteBlob, RemoteError, Sink};
use async_trait::async_trait;
use std::sync::atomic::Ordering;

/// The directory remote, counting writes and running `before_put` (with the number of
/// earlier writes) as each one starts.
struct Instrumented {
    inner: DirectoryRemote,
    puts: std::sync::atomic::AtomicU32,
    before_put: Box<dyn Fn(u32) + Send + Sync>,
}

impl Instrumented {
    fn new(mirror: &Path, before_put: impl Fn(u32) + Send + Sync + 'static) -> Self {
        Instrumented {
            inner: DirectoryRemote::new(mirror, true),
            puts: Default::default(),
            before_put: Box::new(before_put),
        }
    }
}

#[async_trait]
impl Remote for Instrumented {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn credential_source(&self) -> String {
        self.inner.credential_source()
    }
    async fn put_observed(&self, put: Put<'_>) -> Result<PutOutcome, RemoteError> {
        (self.before_put)(self.puts.fetch_add(1, Ordering::SeqCst));
        self.inner.put_observed(put).await
    }
    async fn head(&self, name: &str) -> Result<Option<RemoteBlob>, RemoteError> {
        self.inner.head(name).await
    }
    async fn list(&self) -> Result<Vec<RemoteBlob>, RemoteError> {
        self.inner.list().await
    }
    async fn list_history(&self, path: Option<&str>) -> Result<Vec<RemoteBlob>, RemoteError> {
        self.inner.list_history(path).await
    }
    async fn get(&self, name: &str, sink: Sink<'_>) -> Result<Option<RemoteBlob>, RemoteError> {
        self.inner.get(name, sink).await
    }
    async fn preserve(&self, name: &str, etag: &str, to: &str) -> Result<(), RemoteError> {
        self.inner.preserve(name, etag, to).await
    }
    async fn delete(&self, name: &str, p: &Precondition) -> Result<(), RemoteError> {
        self.inner.delete(name, p).await
    }
}

/// One run of the pipeline over `root`, host "h".
async fn push_once(
    root: &Path,
    filter: &Filter,
    remote: &dyn Remote,
    state: &mut StateIndex,
    opts: &PushOptions,
) -> PushReport {
    let ctx = PushContext {
        root,
        filter,
        remote,
        state,
        host: "h",
    };
    run(ctx, opts, &|_| {}).await.unwrap()
}

fn options() -> PushOptions {
    PushOptions {
        flags: PushFlags::default(),
        on_conflict: OnConflict::KeepBoth,
        deletes: crate::config::Deletes::History,
        two_way: false,
        concurrency: 4,
        paths: None,
        retry: RetryPolicy::default(),
        cancel: None,
        generation_seen: None,
    }
}

#[tokio::test]
async fn a_batch_naming_a_directory_checks_its_files_against_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for i in 0..5 {
        let p = root.join(format!("entries/n{i}.md"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("{i}")).unwrap();
    }
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let remote = Instrumented::new(&dir.path().join("mirror"), |_| {});
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    let mut opts = options();
    let first = push_once(&root, &filter, &remote, &mut state, &opts).await;
    assert_eq!(first.uploaded, 5);
    // The watcher saw an event on the directory itself.
    opts.paths = Some(vec!["entries".to_string()]);
    let puts_before = remote.puts.load(Ordering::SeqCst);
    let batch = push_once(&root, &filter, &remote, &mut state, &opts).await;
    assert_eq!((batch.uploaded, batch.unchanged), (0, 5));
    assert_eq!(
        remote.puts.load(Ordering::SeqCst),
        puts_before,
        "no request for files the index knows"
    );
}

#[tokio::test]
async fn a_file_changed_during_upload_stays_dirty_and_is_pushed_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("n.md");
    std::fs::write(&file, b"original").unwrap();
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    // Someone edits the file while its first upload is in flight.
    let edited = file.clone();
    let remote = Instrumented::new(&dir.path().join("mirror"), move |earlier| {
        if earlier == 0 {
            std::fs::write(&edited, b"edited during upload, longer").unwrap();
        }
    });
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    let first = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(first.uploaded, 1);
    assert_eq!(first.changed_during_upload, vec!["n.md".to_string()]);
    let mirror = dir.path().join("mirror/n.md");
    assert_eq!(std::fs::read(&mirror).unwrap(), b"original");
    // Not recorded as synced: the next pass pushes the new content, without a conflict.
    let second = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(second.uploaded, 1, "{second:?}");
    assert!(second.conflicts.is_empty(), "{second:?}");
    assert!(second.changed_during_upload.is_empty());
    assert_eq!(
        std::fs::read(&mirror).unwrap(),
        b"edited during upload, longer"
    );
    let third = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!((third.uploaded, third.unchanged), (0, 1));
}

#[tokio::test]
async fn a_large_file_changed_while_its_blocks_upload_is_neither_stored_nor_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("big.md");
    std::fs::write(&file, vec![b'a'; 9 * 1024 * 1024]).unwrap();
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    // Someone appends to the file after it was opened, while it is being copied.
    let edited = file.clone();
    let remote = Instrumented::new(&dir.path().join("mirror"), move |earlier| {
        if earlier == 0 {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&edited)
                .unwrap();
            f.write_all(b"appended").unwrap();
        }
    });
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    let first = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(first.changed_during_upload, vec!["big.md".to_string()]);
    assert_eq!(first.uploaded, 0, "{first:?}");
    assert!(first.failed.is_empty(), "{first:?}");
    let mirror = dir.path().join("mirror/big.md");
    assert!(!mirror.exists(), "a torn copy was stored");
    assert!(state.load().unwrap().is_empty(), "not recorded as synced");
    let second = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(second.uploaded, 1, "{second:?}");
    assert_eq!(
        std::fs::read(&mirror).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

#[tokio::test]
async fn a_file_deleted_or_swapped_for_a_symlink_after_the_scan_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for name in ["a.md", "b.md", "c.md"] {
        std::fs::write(root.join(name), name).unwrap();
    }
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "secret").unwrap();
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let (b, c) = (root.join("b.md"), root.join("c.md"));
    let remote = Instrumented::new(&dir.path().join("mirror"), move |earlier| {
        if earlier == 0 {
            std::fs::remove_file(&b).unwrap();
            std::fs::remove_file(&c).unwrap();
            std::os::unix::fs::symlink(&secret, &c).unwrap();
        }
    });
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    let opts = PushOptions {
        concurrency: 1,
        ..options()
    };
    let report = push_once(&root, &filter, &remote, &mut state, &opts).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(report.is_clean());
    assert_eq!(report.uploaded, 1);
    assert!(
        !dir.path().join("mirror/c.md").exists(),
        "the link was not followed"
    );
}

#[test]
fn conflict_names_keep_directory_and_extension() {
    let when = time::macros::datetime!(2026-11-22 10:15:00 UTC);
    assert_eq!(
        conflict_name("notes.md", "laptop", when, 1),
        "notes.conflict-laptop-20261122T101500Z.md"
    );
    assert_eq!(
        conflict_name("events/20261122.jsonl", "my host.local", when, 1),
        "events/20261122.conflict-my_host_local-20261122T101500Z.jsonl"
    );
    assert_eq!(
        conflict_name("dir.d/README", "h", when, 1),
        "dir.d/README.conflict-h-20261122T101500Z"
    );
    assert_eq!(
        conflict_name("d/n.md", "h", when, 2),
        "d/n.conflict-h-20261122T101500Z-2.md"
    );
    assert_eq!(
        conflict_name("d.x/README", "h", when, 3),
        "d.x/README.conflict-h-20261122T101500Z-3"
    );
    assert_eq!(
        conflict_name(".hidden", "h", when, 1),
        ".hidden.conflict-h-20261122T101500Z"
    );
}

#[tokio::test]
async fn another_writer_between_keeping_the_old_version_and_replacing_it_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("n.md"), b"v1").unwrap();
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let mirror = dir.path().join("mirror");
    // On the second write (after v1 was kept in history, before v2 replaces it) another
    // writer puts its own version in place.
    let theirs = mirror.join("n.md");
    let remote = Instrumented::new(&mirror, move |earlier| {
        if earlier == 1 {
            std::fs::write(&theirs, b"theirs").unwrap();
        }
    });
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    let first = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(first.uploaded, 1);
    std::fs::write(root.join("n.md"), b"v2 edited").unwrap();
    let second = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(second.conflicts.len(), 1, "{second:?}");
    // v1 in history, theirs current, ours (v2) in a conflict copy: all three kept.
    let history = remote.list_history(Some("n.md")).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    let mut v1 = Vec::new();
    Remote::get(&remote, &history[0].name, &mut v1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1, b"v1");
    assert_eq!(std::fs::read(mirror.join("n.md")).unwrap(), b"theirs");
    let copy = second.conflicts[0].copy.clone().unwrap();
    assert_eq!(std::fs::read(mirror.join(copy)).unwrap(), b"v2 edited");
}

#[tokio::test]
async fn a_deleted_file_is_kept_in_history_then_removed_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.md"), b"a").unwrap();
    std::fs::write(root.join("b.md"), b"b").unwrap();
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let mirror = dir.path().join("mirror");
    let remote = Instrumented::new(&mirror, |_| {});
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    push_once(&root, &filter, &remote, &mut state, &options()).await;
    std::fs::remove_file(root.join("a.md")).unwrap();
    let mut keep = options();
    keep.deletes = crate::config::Deletes::Keep;
    let kept = push_once(&root, &filter, &remote, &mut state, &keep).await;
    assert!(kept.deleted.is_empty());
    assert!(mirror.join("a.md").exists(), "sync.deletes = keep");
    let report = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(report.deleted, vec!["a.md".to_string()]);
    assert!(!mirror.join("a.md").exists());
    assert_eq!(remote.list_history(Some("a.md")).await.unwrap().len(), 1);
    assert!(!state.load().unwrap().contains_key("a.md"), "row removed");
    // A daemon batch naming the gone path deletes nothing more.
    let mut batch = options();
    batch.paths = Some(vec!["a.md".to_string()]);
    let again = push_once(&root, &filter, &remote, &mut state, &batch).await;
    assert!(again.deleted.is_empty());
}

#[tokio::test]
async fn a_mass_delete_arriving_in_small_batches_is_still_held() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("e")).unwrap();
    for i in 0..60 {
        std::fs::write(root.join(format!("e/{i}.md")), format!("{i}")).unwrap();
    }
    std::fs::write(root.join("keep.md"), b"k").unwrap();
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let mirror = dir.path().join("mirror");
    let remote = Instrumented::new(&mirror, |_| {});
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    push_once(&root, &filter, &remote, &mut state, &options()).await;
    std::fs::remove_dir_all(root.join("e")).unwrap();
    // The watcher hands the paths over ten at a time.
    let mut batch = options();
    batch.paths = Some((0..10).map(|i| format!("e/{i}.md")).collect());
    let report = push_once(&root, &filter, &remote, &mut state, &batch).await;
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.held_deletes.len(), 60);
    assert_eq!(remote.list().await.unwrap().len(), 61, "nothing deleted");
    batch.flags.allow_deletes = true;
    let report = push_once(&root, &filter, &remote, &mut state, &batch).await;
    assert_eq!(
        report.deleted.len(),
        10,
        "a batch deletes only its own paths"
    );
    let mut full = options();
    full.flags.allow_deletes = true;
    let report = push_once(&root, &filter, &remote, &mut state, &full).await;
    assert_eq!(report.deleted.len(), 50);
    assert_eq!(remote.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_forced_push_of_unchanged_files_keeps_no_history_and_an_edit_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.md"), b"a").unwrap();
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let remote = Instrumented::new(&dir.path().join("mirror"), |_| {});
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    push_once(&root, &filter, &remote, &mut state, &options()).await;
    let mut force = options();
    force.flags.force = true;
    let report = push_once(&root, &filter, &remote, &mut state, &force).await;
    assert_eq!(report.uploaded, 1);
    assert!(remote.list_history(None).await.unwrap().is_empty());
    std::fs::write(root.join("a.md"), b"a, edited").unwrap();
    push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(remote.list_history(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_small_journal_emptied_in_a_daemon_batch_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..5 {
        std::fs::write(root.join(format!("{i}.md")), format!("{i}")).unwrap();
    }
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let remote = Instrumented::new(&dir.path().join("mirror"), |_| {});
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    push_once(&root, &filter, &remote, &mut state, &options()).await;
    for i in 0..5 {
        std::fs::remove_file(root.join(format!("{i}.md"))).unwrap();
    }
    let mut batch = options();
    batch.paths = Some((0..5).map(|i| format!("{i}.md")).collect());
    let report = push_once(&root, &filter, &remote, &mut state, &batch).await;
    assert_eq!(report.held_deletes.len(), 5, "{report:?}");
    assert_eq!(remote.list().await.unwrap().len(), 5);
}

#[tokio::test]
async fn deletes_one_at_a_time_count_together_across_passes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..100 {
        std::fs::write(root.join(format!("{i}.md")), format!("{i}")).unwrap();
    }
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let remote = Instrumented::new(&dir.path().join("mirror"), |_| {});
    let state_dir = dir.path().join("state");
    let mut state = StateIndex::open(&state_dir, "t").unwrap();
    push_once(&root, &filter, &remote, &mut state, &options()).await;
    let mut held = 0;
    for i in 0..100 {
        std::fs::remove_file(root.join(format!("{i}.md"))).unwrap();
        if i == 30 {
            // A restart does not reset the count.
            drop(state);
            state = StateIndex::open(&state_dir, "t").unwrap();
        }
        let mut batch = options();
        batch.paths = Some(vec![format!("{i}.md")]);
        let report = push_once(&root, &filter, &remote, &mut state, &batch).await;
        held = report.held_deletes.len();
    }
    assert!(held >= 50, "held {held}");
    assert!(remote.list().await.unwrap().len() >= 50, "half stays");
}

#[tokio::test]
async fn a_replaced_root_holds_its_deletes_until_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..40 {
        std::fs::write(root.join(format!("{i}.md")), format!("{i}")).unwrap();
    }
    let filter = Filter::new(&root, &["*.md".to_string()], &[]).unwrap();
    let remote = Instrumented::new(&dir.path().join("mirror"), |_| {});
    let mut state = StateIndex::open(&dir.path().join("state"), "t").unwrap();
    push_once(&root, &filter, &remote, &mut state, &options()).await;
    // The volume is gone; its mount point holds a placeholder, and one real file was
    // deleted the same minute.
    std::fs::rename(&root, dir.path().join("old")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..39 {
        std::fs::write(root.join(format!("{i}.md")), format!("{i}")).unwrap();
    }
    let report = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(report.held_deletes, vec!["39.md".to_string()], "{report:?}");
    assert!(
        report
            .held_reason
            .is_some_and(|r| r.contains("another directory"))
    );
    let again = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(again.held_deletes.len(), 1, "still held on the next pass");
    let mut allow = options();
    allow.flags.allow_deletes = true;
    let report = push_once(&root, &filter, &remote, &mut state, &allow).await;
    assert_eq!(report.deleted, vec!["39.md".to_string()]);
    std::fs::remove_file(root.join("0.md")).unwrap();
    let report = push_once(&root, &filter, &remote, &mut state, &options()).await;
    assert_eq!(
        report.deleted,
        vec!["0.md".to_string()],
        "the new root is the root now"
    );
}
