//! The remote contract at the trait level (rclone's backend tests): the same checks
//! against the in-memory remote, the directory remote and Azure Blob Storage (Azurite).

mod common;

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
    let content = Content::open(&dir, "big.md", &MemoryBudget::default())
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
async fn azure_remote() {
    let az = Azurite::shared();
    let container = unique_container("contract");
    let url = format!("{}?{}", az.container_url(&container), az.account_sas());
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
    let remote = devlogd::remote::azure::AzureRemote::new(&location, credential).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    contract(&remote, scratch.path()).await;
}
