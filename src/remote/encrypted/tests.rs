use super::*;
use crate::remote::Precondition;
use crate::remote::content::Content;
use crate::remote::memory::MemoryRemote;
use std::sync::Arc;

const MARKER: &str = "SALARY-7f3a";

/// An encrypted remote over `inner`, its key made (cheap KDF) and unlocked.
async fn encrypted(inner: Arc<MemoryRemote>, dir: &std::path::Path) -> EncryptedRemote {
    let remote = EncryptedRemote::new(
        inner,
        KeySource {
            passphrase: Box::new(|| Ok(zeroize::Zeroizing::new("pw".to_string()))),
            cached: dir.join("index.key"),
        },
    );
    remote.ready(true).await.unwrap();
    remote
}

fn all_stored(inner: &MemoryRemote) -> Vec<(String, Vec<u8>, Option<String>)> {
    inner.snapshot()
}

#[tokio::test]
async fn what_is_stored_holds_no_name_or_text_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemoryRemote::new());
    let remote = encrypted(inner.clone(), dir.path()).await;
    let text = format!("my {MARKER} is private\n").repeat(5000); // several chunks
    let name = format!("notes/{MARKER}/today.md");
    let content = Content::from_bytes(text.clone().into());
    let put = remote
        .put(&name, &content, &Precondition::IfAbsent, "w1")
        .await
        .unwrap();
    assert_eq!(Some(put.md5), content.known_md5(), "the plaintext MD5");

    for (stored, bytes, sealed) in all_stored(&inner) {
        assert!(
            !stored.contains(MARKER) && !stored.contains("today"),
            "{stored}"
        );
        assert!(
            !String::from_utf8_lossy(&bytes).contains(MARKER),
            "{stored}"
        );
        if let Some(sealed) = sealed {
            assert!(!sealed.contains(&crate::remote::hex(&put.md5)));
        }
    }

    let listed = remote.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].size, text.len() as u64);
    assert_eq!(listed[0].md5, Some(put.md5));
    assert!(!listed[0].corrupt);

    let mut back = Vec::new();
    let got = remote.get(&name, &mut back).await.unwrap().unwrap();
    assert_eq!(back, text.as_bytes());
    assert_eq!(got.md5, Some(put.md5));
}

#[tokio::test]
async fn history_names_and_the_change_mark_map_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemoryRemote::new());
    let remote = encrypted(inner.clone(), dir.path()).await;
    let name = "a/b.md";
    let first = remote
        .put(
            name,
            &Content::from_bytes("one".into()),
            &Precondition::IfAbsent,
            "w",
        )
        .await
        .unwrap();
    let kept = crate::remote::history_name::version_name(name, &first.etag, "w");
    remote.preserve(name, &first.etag, &kept).await.unwrap();
    let versions = remote.list_history(Some(name)).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].name, kept);
    let mut back = Vec::new();
    remote.get(&kept, &mut back).await.unwrap().unwrap();
    assert_eq!(back, b"one", "a kept version decrypts under its path");
    // The remote's own small blobs keep their names and bytes.
    crate::remote::change_mark::bump(&remote, "w", None)
        .await
        .unwrap();
    assert!(
        inner
            .head(crate::remote::change_mark::MARK)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_flipped_byte_or_a_blob_moved_to_another_name_is_refused_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemoryRemote::new());
    let remote = encrypted(inner.clone(), dir.path()).await;
    for (name, text) in [("a.md", "alpha text"), ("b.md", "bravo text")] {
        remote
            .put(
                name,
                &Content::from_bytes(text.into()),
                &Precondition::IfAbsent,
                "w",
            )
            .await
            .unwrap();
    }
    let keys = remote.keys().await.unwrap().clone();
    let (a, b) = (
        names::encrypt(&keys, "a.md", 0).unwrap(),
        names::encrypt(&keys, "b.md", 0).unwrap(),
    );
    // Flip one byte of a's contents, keeping its sealed metadata.
    inner.tamper(&a, |bytes| bytes[40] ^= 1);
    let mut out = Vec::new();
    let e = remote.get("a.md", &mut out).await.unwrap_err();
    assert!(matches!(e, RemoteError::Corrupt { .. }), "{e}");
    assert!(out.is_empty(), "no byte of a damaged chunk is written");
    // b's blob copied over a's name: authenticated for another path.
    inner.copy_blob(&b, &a);
    let mut out = Vec::new();
    let e = remote.get("a.md", &mut out).await.unwrap_err();
    assert!(matches!(e, RemoteError::Corrupt { .. }), "{e}");
    let listed = remote.list().await.unwrap();
    let a_listed = listed.iter().find(|x| x.name == "a.md").unwrap();
    assert!(a_listed.corrupt, "its sealed metadata is another path's");
}

#[tokio::test]
async fn blobs_this_key_did_not_write_are_left_out_of_listings() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemoryRemote::new());
    let remote = encrypted(inner.clone(), dir.path()).await;
    inner.write_as_other("planted/in-clear.md", b"hello");
    inner.write_as_other("mfrggzdfmztwq2lk", b"looks like base32");
    assert!(remote.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_passphrase_is_locked_and_a_plain_prefix_is_not_encrypted_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemoryRemote::new());
    encrypted(inner.clone(), dir.path()).await;
    let other = tempfile::tempdir().unwrap();
    let wrong = EncryptedRemote::new(
        inner.clone(),
        KeySource {
            passphrase: Box::new(|| Ok(zeroize::Zeroizing::new("nope".to_string()))),
            cached: other.path().join("index.key"),
        },
    );
    let e = wrong.ready(false).await.unwrap_err();
    assert!(matches!(e, RemoteError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("passphrase does not unlock"), "{e}");
    assert!(!other.path().join("index.key").exists(), "nothing kept");

    let plain = Arc::new(MemoryRemote::new());
    plain.write_as_other("notes/a.md", b"in clear");
    let fresh = tempfile::tempdir().unwrap();
    let e = EncryptedRemote::new(
        plain.clone(),
        KeySource {
            passphrase: Box::new(|| Ok(zeroize::Zeroizing::new("pw".to_string()))),
            cached: fresh.path().join("index.key"),
        },
    )
    .ready(true)
    .await
    .unwrap_err();
    assert!(e.to_string().contains("new prefix"), "{e}");
    assert!(plain.head(KEY_NAME).await.unwrap().is_none(), "no key made");
    // And the other way round: a plain remote refuses an encrypted prefix.
    let e = inner.ready(true).await.unwrap_err();
    assert!(e.to_string().contains("enabled = true"), "{e}");
}

#[tokio::test]
async fn prune_removes_old_encrypted_versions_and_leaves_the_key_and_current_files() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemoryRemote::new());
    let remote = encrypted(inner.clone(), dir.path()).await;
    let first = remote
        .put(
            "a.md",
            &Content::from_bytes("one".into()),
            &Precondition::IfAbsent,
            "w",
        )
        .await
        .unwrap();
    let kept = crate::remote::history_name::version_name("a.md", &first.etag, "w");
    remote.preserve("a.md", &first.etag, &kept).await.unwrap();
    remote
        .put(
            "a.md",
            &Content::from_bytes("two".into()),
            &Precondition::IfMatch(first.etag.clone()),
            "w",
        )
        .await
        .unwrap();
    let stored_before = inner.snapshot().len();
    // Sixty days on, a 30-day window keeps nothing of the history.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(60);
    let report = crate::history::prune(
        &remote,
        30,
        later,
        crate::remote::retry::RetryPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.removed, 1, "{report:?}");
    assert_eq!(inner.snapshot().len(), stored_before - 1);
    assert!(remote.list_history(Some("a.md")).await.unwrap().is_empty());
    assert!(
        inner.head(KEY_NAME).await.unwrap().is_some(),
        "the key stays"
    );
    let mut back = Vec::new();
    remote.get("a.md", &mut back).await.unwrap().unwrap();
    assert_eq!(back, b"two");
}
