//! What devlogd shows a person about names that came from the remote or the disk, and proofs
//! that the hostile-service harness (`tests/common/hostile.rs`) does what the tests built on it
//! rely on: forwarding to Azurite, answering on its own, rewriting Azurite's answers.

mod common;

use common::hostile::{Action, Hostile, ListedBlob, Resp};
use common::{Azurite, TestEnv, unique_container};

#[test]
fn hostile_proxy_forwards_a_push_to_azurite_and_records_its_put_blobs() {
    let az = Azurite::shared();
    let container = unique_container("hostile-proxy");
    az.create_container(&container);
    let proxy = Hostile::proxy(az.port(), |_| Action::Forward);
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        proxy.container_url(&container)
    ));
    env.write_file("a.md", b"alpha\n");
    env.write_file("dir/b c%.md", b"beta\n");

    env.run(&["push"]).assert_code(0);

    let requests = proxy.requests();
    let mut put: Vec<String> = requests
        .iter()
        .filter(|r| r.is_put_blob())
        .filter_map(|r| r.blob_name())
        .collect();
    put.sort();
    assert_eq!(put, ["a.md", "dir/b c%.md"], "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|r| r.is_put_blob() && r.body == b"alpha\n" && r.header("Content-MD5").is_some()),
        "{requests:#?}"
    );
    assert_eq!(
        az.get_blob(&container, "dir/b c%.md").as_deref(),
        Some(&b"beta\n"[..])
    );
}

#[test]
fn hostile_standalone_listing_is_what_restore_dry_run_shows() {
    let fake = Hostile::standalone(|req| {
        if !req.is_list() {
            return Action::Forward;
        }
        let prefix = req.query_param("prefix").unwrap_or_default();
        let blobs: Vec<ListedBlob> = [
            ListedBlob::of("notes/crafted.md", b"crafted\n"),
            ListedBlob::of("amp & <lt>.md", b"x"),
        ]
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .collect();
        Action::Reply(Resp::list(&blobs))
    });
    let env = TestEnv::new().with_sas(Azurite::shared().account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        fake.container_url("journal")
    ));

    let out = env.run(&["restore", "--dry-run"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("would restore notes/crafted.md")
            && out.stdout.contains("would restore amp & <lt>.md"),
        "{out:?}"
    );
    assert!(fake.requests().iter().any(|r| r.is_list()));
    assert!(!env.journal().join("notes").exists());
}

#[test]
fn hostile_rewrite_of_a_get_blob_body_is_caught_by_restore() {
    let az = Azurite::shared();
    let container = unique_container("hostile-rewrite");
    az.create_container(&container);
    az.put_blob(&container, "n.md", b"the real bytes\n");
    let proxy = Hostile::proxy(az.port(), |req| {
        if req.is_get_blob() {
            Action::Rewrite(Box::new(|resp: Resp| {
                resp.body(b"the fake bytes\n".to_vec())
            }))
        } else {
            Action::Forward
        }
    });
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n",
        proxy.container_url(&container)
    ));

    let out = env.run(&["restore"]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains("n.md") || out.stderr.contains("n.md"),
        "{out:?}"
    );
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("Content-MD5"),
        "{out:?}"
    );
    assert!(!env.journal().join("n.md").exists());
    assert!(proxy.requests().iter().any(|r| r.is_get_blob()));
}
