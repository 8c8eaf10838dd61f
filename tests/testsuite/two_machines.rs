//! Two machines, one journal prefix: both daemons running, `devlog` used on each, and no
//! conflict copies — every entry and every machine's events on the remote.

use crate::common;

use common::daemon::Daemon;
use common::{Azurite, TestEnv, unique_container, wait_for};
use std::collections::BTreeSet;
use std::time::Duration;

fn machine(az: &Azurite, container: &str) -> TestEnv {
    let env = TestEnv::new().with_sas(az.account_sas());
    env.write_config(&format!(
        "[remote]\nurl = \"{}/journal\"\n",
        az.container_url(container)
    ));
    env
}

fn devlog(env: &TestEnv, id: &str, args: &[&str]) -> String {
    let out = env
        .devlog()
        .env("DEVLOGD_MACHINE_ID", id)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_machines_on_one_prefix_make_no_conflict_copies() {
    let az = Azurite::shared();
    let container = unique_container("two");
    let (a, b) = (machine(az, &container), machine(az, &container));
    let _da = Daemon::start_with(&a, &[("DEVLOGD_MACHINE_ID", "machine-a")]);
    let _db = Daemon::start_with(&b, &[("DEVLOGD_MACHINE_ID", "machine-b")]);
    let mut ids = BTreeSet::new();
    for i in 0..20 {
        for (env, id) in [(&a, "machine-a"), (&b, "machine-b")] {
            let out = devlog(env, id, &["new", "-m", &format!("entry {i} on {id}")]);
            ids.insert(out.split_whitespace().next().unwrap().to_string());
            devlog(env, id, &["list"]);
        }
    }
    let names = wait_for(Duration::from_secs(60), "every entry on the remote", || {
        let names: Vec<String> = az
            .list_blobs(&container)
            .into_iter()
            .map(|b| b.name)
            .collect();
        let entries = names
            .iter()
            .filter(|n| n.starts_with("journal/entries/"))
            .count();
        (entries == 40).then_some(names)
    });
    let conflicts: Vec<&String> = names.iter().filter(|n| n.contains(".conflict-")).collect();
    assert!(conflicts.is_empty(), "conflict copies: {conflicts:?}");
    let events: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("journal/events/"))
        .collect();
    assert!(events.len() >= 2, "one events file per machine: {events:?}");
    for id in &ids {
        assert!(
            names.iter().any(|n| n.contains(id.as_str())),
            "entry {id} missing: {names:?}"
        );
    }
}
