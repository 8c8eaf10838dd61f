//! The remote contract at the trait level (rclone's backend tests): the same checks
//! against the in-memory remote, the directory remote and Azure Blob Storage (Azurite).

use crate::common;

use bytes::Bytes;
use common::{Azurite, unique_container};
use devlogd::fsutil::Beneath;
use devlogd::remote::content::{Content, MemoryBudget};
use devlogd::remote::directory::DirectoryRemote;
use devlogd::remote::memory::MemoryRemote;
use devlogd::remote::{Precondition, Remote, RemoteError};
use md5::{Digest, Md5};
use std::sync::Arc;

fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

fn bytes(data: &'static [u8]) -> Content {
    Content::from_bytes(Bytes::from_static(data))
}

async fn contract(remote: &dyn Remote, scratch: &std::path::Path) {
    let name = "d/ü n#1.md";
    // Create only if absent.
    let first = remote
        .put(name, &bytes(b"one"), &Precondition::IfAbsent, "writer-1")
        .await
        .unwrap();
    assert_eq!(first.md5, md5(b"one"));
    let again = remote
        .put(name, &bytes(b"two"), &Precondition::IfAbsent, "writer-1")
        .await;
    assert!(matches!(again, Err(RemoteError::Conflict)), "{again:?}");
    // Replace only the version we know.
    let stale = remote
        .put(
            name,
            &bytes(b"two"),
            &Precondition::IfMatch("\"nope\"".into()),
            "writer-1",
        )
        .await;
    assert!(matches!(stale, Err(RemoteError::Conflict)), "{stale:?}");
    let second = remote
        .put(
            name,
            &bytes(b"two"),
            &Precondition::IfMatch(first.etag.clone()),
            "writer-1",
        )
        .await
        .unwrap();
    assert_ne!(second.etag, first.etag);
    // Head: size, MD5, ETag, and the writer while the content is what it wrote.
    let head = remote.head(name).await.unwrap().unwrap();
    assert_eq!((head.size, head.md5), (3, Some(md5(b"two"))));
    assert_eq!(head.etag, second.etag);
    if let Some(w) = &head.writer {
        assert_eq!(w, "writer-1");
    }
    assert!(remote.head("missing.md").await.unwrap().is_none());
    // A large file from disk goes in blocks; the stored MD5 is the whole file's.
    let big: Vec<u8> = (0..9 * 1024 * 1024 + 7).map(|i| (i % 253) as u8).collect();
    std::fs::write(scratch.join("big.md"), &big).unwrap();
    let dir = Arc::new(Beneath::open(scratch).unwrap());
    let content = Content::open(&dir, "big.md", &MemoryBudget::default(), big.len() as u64)
        .await
        .ok()
        .unwrap();
    let stored = remote
        .put("big.md", &content, &Precondition::IfAbsent, "writer-1")
        .await
        .unwrap();
    assert_eq!(stored.md5, md5(&big));
    // The listing has both, with their MD5s.
    let mut listed: Vec<(String, Option<[u8; 16]>)> = remote
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.name, b.md5))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("big.md".to_string(), Some(md5(&big))),
            (name.to_string(), Some(md5(b"two")))
        ]
    );
    history_contract(remote, name, &second.etag, &big).await;
}

/// Keeping replaced versions, reading blobs back, deleting.
async fn history_contract(remote: &dyn Remote, name: &str, etag: &str, big: &[u8]) {
    use devlogd::history;
    let t1 = time::OffsetDateTime::now_utc();
    let kept = history::version_name(name, etag, "writer-2");
    // Only the version named by its ETag is kept.
    let stale = remote.preserve(name, "\"nope\"", &kept).await;
    assert!(matches!(stale, Err(RemoteError::Conflict)), "{stale:?}");
    let gone = remote.preserve("missing.md", "\"x\"", &kept).await;
    assert!(matches!(gone, Err(RemoteError::Conflict)), "{gone:?}");
    remote.preserve(name, etag, &kept).await.unwrap();
    // Kept again (a retry): still one copy. A name taken by other content keeps nothing.
    remote.preserve(name, etag, &kept).await.unwrap();
    let taken = history::version_name(name, etag, "writer-3");
    remote
        .put(
            &taken,
            &bytes(b"planted"),
            &Precondition::IfAbsent,
            "intruder",
        )
        .await
        .unwrap();
    let refused = remote.preserve(name, etag, &taken).await;
    assert!(
        matches!(refused, Err(RemoteError::Permanent { .. })),
        "{refused:?}"
    );
    remote.delete(&taken, &Precondition::None).await.unwrap();
    // The history is not in the current view, and is listed on its own.
    assert!(
        remote
            .list()
            .await
            .unwrap()
            .iter()
            .all(|b| !history::is_history(&b.name))
    );
    let versions = remote.list_history(Some(name)).await.unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0].name, kept);
    assert_eq!(versions[0].md5, Some(md5(b"two")));
    if let Some(w) = &versions[0].writer {
        assert_eq!(
            w, "writer-1",
            "the mark of the original travels with the copy"
        );
    }
    let written = versions[0].written_ns.expect("a write time");
    assert!(written <= t1.unix_timestamp_nanos() + 1_000_000_000);
    assert_eq!(remote.list_history(None).await.unwrap().len(), 1);
    assert!(
        remote
            .list_history(Some("big.md"))
            .await
            .unwrap()
            .is_empty()
    );
    // Reading back, verified.
    let mut out = Vec::new();
    let blob = remote.get(&kept, &mut out).await.unwrap().unwrap();
    assert_eq!(out, b"two");
    assert_eq!(blob.md5, Some(md5(b"two")));
    let mut out = Vec::new();
    remote.get("big.md", &mut out).await.unwrap().unwrap();
    assert!(out == big, "the large blob reads back whole");
    let mut out = Vec::new();
    assert!(remote.get("missing.md", &mut out).await.unwrap().is_none());
    // Delete: only the version we know; a missing blob is already deleted.
    let stale = remote
        .delete(name, &Precondition::IfMatch("\"nope\"".into()))
        .await;
    assert!(matches!(stale, Err(RemoteError::Conflict)), "{stale:?}");
    remote
        .delete(name, &Precondition::IfMatch(etag.to_string()))
        .await
        .unwrap();
    assert!(remote.head(name).await.unwrap().is_none());
    remote
        .delete(name, &Precondition::IfMatch(etag.to_string()))
        .await
        .unwrap();
    // The kept version outlives the blob, and can be removed itself.
    assert_eq!(remote.list_history(Some(name)).await.unwrap().len(), 1);
    remote.delete(&kept, &Precondition::None).await.unwrap();
    assert!(remote.list_history(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn memory_remote() {
    let scratch = tempfile::tempdir().unwrap();
    let remote = MemoryRemote::new();
    contract(&remote, scratch.path()).await;
    // Its hooks: injected faults come back in order.
    remote.fail_next(
        1,
        RemoteError::Transient {
            message: "busy".into(),
            retry_after: None,
        },
    );
    assert!(remote.list().await.is_err());
    assert!(remote.list().await.is_ok());
}

#[tokio::test]
async fn directory_remote() {
    let scratch = tempfile::tempdir().unwrap();
    let mirror = tempfile::tempdir().unwrap();
    contract(&DirectoryRemote::new(mirror.path(), false), scratch.path()).await;
}

#[tokio::test]
async fn azure_remote_with_an_account_key() {
    // Shared Key signs each request; the copy source of `preserve` carries no SAS.
    let az = Azurite::shared();
    let container = unique_container("contract-key");
    let location = match devlogd::config::parse_remote_url(
        &az.container_url(&container),
        std::path::Path::new("/"),
    ) {
        Ok(devlogd::config::RemoteConfig::Azure(l)) => l,
        other => panic!("{other:?}"),
    };
    let credential = devlogd::remote::credential::resolve_from(
        &location,
        devlogd::config::AuthMode::Auto,
        &|name| (name == "AZURE_STORAGE_ACCOUNT_KEY").then(|| common::ACCOUNT_KEY.to_string()),
        &devlogd::remote::credential::CredentialsFile::default(),
    )
    .unwrap();
    let remote = devlogd::remote::azure::AzureRemote::new(&location, credential).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    contract(&remote, scratch.path()).await;
}

/// The Azure remote on Azurite, authorised by the harness's account SAS.
fn azure_with_sas(az: &Azurite, container: &str) -> devlogd::remote::azure::AzureRemote {
    let url = format!("{}?{}", az.container_url(container), az.account_sas());
    let location = match devlogd::config::parse_remote_url(&url, std::path::Path::new("/")) {
        Ok(devlogd::config::RemoteConfig::Azure(l)) => l,
        other => panic!("{other:?}"),
    };
    let credential = devlogd::remote::credential::resolve_from(
        &location,
        devlogd::config::AuthMode::Auto,
        &|_| None,
        &devlogd::remote::credential::CredentialsFile::default(),
    )
    .unwrap();
    devlogd::remote::azure::AzureRemote::new(&location, credential).unwrap()
}

#[tokio::test]
async fn azure_remote() {
    let az = Azurite::shared();
    let container = unique_container("contract");
    let remote = azure_with_sas(az, &container);
    let scratch = tempfile::tempdir().unwrap();
    contract(&remote, scratch.path()).await;
}

/// Many large files at once with a memory budget of two blocks: every upload finishes (a
/// file waiting for memory must not stop its own blocks in flight from giving it back), and
/// each blob holds its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_at_once_share_a_small_memory_budget_without_deadlock() {
    let az = Azurite::shared();
    let container = unique_container("budget");
    let remote = azure_with_sas(az, &container);
    let scratch = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for i in 0..6u8 {
        let bytes: Vec<u8> = (0..13 * 1024 * 1024 + i as usize)
            .map(|n| (n % 241) as u8 ^ i)
            .collect();
        std::fs::write(scratch.path().join(format!("f{i}.md")), &bytes).unwrap();
        want.push((format!("f{i}.md"), md5(&bytes)));
    }
    let dir = Arc::new(Beneath::open(scratch.path()).unwrap());
    let budget = MemoryBudget::new(8 * 1024 * 1024);
    let uploads = want.iter().map(|(name, _)| {
        let (dir, budget, remote) = (&dir, &budget, &remote);
        async move {
            let content = Content::open(dir, name, budget, 13 * 1024 * 1024)
                .await
                .ok()
                .unwrap();
            remote
                .put(name, &content, &Precondition::IfAbsent, "w")
                .await
                .unwrap()
        }
    });
    let all = futures::future::join_all(uploads);
    let done = tokio::time::timeout(std::time::Duration::from_secs(120), all)
        .await
        .expect("uploads sharing a small budget deadlocked");
    for ((_, md5), outcome) in want.iter().zip(done) {
        assert_eq!(&outcome.md5, md5);
    }
    let listed: Vec<_> = az
        .list_blobs(&container)
        .into_iter()
        .map(|b| (b.name, b.content_md5_b64))
        .collect();
    assert_eq!(listed.len(), 6, "{listed:?}");
}
