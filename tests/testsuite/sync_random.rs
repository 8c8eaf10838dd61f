//! A seeded random run of two-way sync: three machines (own HOME each) on one directory
//! remote make random creates, edits, renames and deletes, sync (`pull`, then `push`) at
//! random moments, and go offline for a while; then every machine syncs until nothing
//! changes. Afterwards the three trees are byte-identical, and every content that stood on
//! a machine when it synced is still somewhere: in a tree or on the remote (the current
//! view or the history).
//!
//! `DEVLOGD_SYNC_SEED` picks the seed (printed, so a failure can be replayed) and
//! `DEVLOGD_SYNC_STEPS` the length (`bench/sync_soak.sh` runs long ones).

use crate::common;

use common::TestEnv;
use std::collections::{BTreeMap, BTreeSet};

/// xorshift64*: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The journal's own files (what a push uploads: no hidden names).
fn tree(env: &TestEnv) -> BTreeMap<String, Vec<u8>> {
    common::tree(&env.journal())
        .into_iter()
        .filter(|(rel, _)| !rel.split('/').any(|s| s.starts_with('.')))
        .collect()
}

/// One sync of one machine; whether both passes went through.
fn sync(env: &TestEnv) -> bool {
    let pull = env.run(&["pull"]);
    assert!(
        matches!(pull.code(), Some(0 | 1)),
        "pull: {}\n{}",
        pull.stdout,
        pull.stderr
    );
    assert!(!pull.stdout.contains("failed:"), "pull: {}", pull.stdout);
    let push = env.run(&["push"]);
    assert!(
        matches!(push.code(), Some(0 | 1)),
        "push: {}\n{}",
        push.stdout,
        push.stderr
    );
    pull.code() == Some(0) && push.code() == Some(0)
}

#[test]
fn three_machines_at_random_end_identical_and_lose_nothing() {
    let seed: u64 = std::env::var("DEVLOGD_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261203);
    let steps: usize = std::env::var("DEVLOGD_SYNC_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    eprintln!("sync_random: seed {seed}, {steps} steps");
    let mut rng = Rng(seed | 1);
    let shared = tempfile::tempdir().unwrap();
    let mirror = shared.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let config = format!(
        "[remote]\nurl = \"file://{}\"\n\n[sync]\nmode = \"two-way\"\n",
        mirror.display()
    );
    let machines: Vec<TestEnv> = (0..3)
        .map(|_| {
            let env = TestEnv::new();
            env.write_config(&config);
            std::fs::create_dir_all(env.journal()).unwrap();
            env
        })
        .collect();
    let mut offline = [false; 3];
    // Contents that stood on a machine when it synced: they must survive.
    let mut pushed: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut counter = 0u32;
    for step in 0..steps {
        let m = rng.below(3);
        let env = &machines[m];
        let names: Vec<String> = tree(env).into_keys().collect();
        counter += 1;
        let text = format!("m{m} step {step} #{counter}\n").into_bytes();
        match rng.below(10) {
            0..=2 => {
                let rel = format!("d{}/n{counter}.md", rng.below(3));
                env.write_file(&rel, &text);
            }
            3..=4 if !names.is_empty() => {
                let rel = &names[rng.below(names.len())];
                env.write_file(rel, &text);
            }
            5 if !names.is_empty() => {
                let from = &names[rng.below(names.len())];
                let to = format!("d{}/r{counter}.md", rng.below(3));
                std::fs::create_dir_all(env.journal().join(&to).parent().unwrap()).unwrap();
                std::fs::rename(env.journal().join(from), env.journal().join(&to)).unwrap();
            }
            6 if names.len() > 3 => {
                let rel = &names[rng.below(names.len())];
                std::fs::remove_file(env.journal().join(rel)).unwrap();
            }
            7 => offline[m] = !offline[m],
            _ if !offline[m] => {
                let before = tree(env);
                if sync(env) {
                    pushed.extend(before.into_values());
                }
            }
            _ => {}
        }
    }
    // Quiescence: everyone online, syncing in turn until a whole round changes nothing.
    let mut last: Vec<BTreeMap<String, Vec<u8>>> = Vec::new();
    for round in 0..8 {
        for env in &machines {
            let before = tree(env);
            if sync(env) {
                pushed.extend(before.into_values());
            }
        }
        let now: Vec<_> = machines.iter().map(tree).collect();
        if now == last && now.windows(2).all(|w| w[0] == w[1]) {
            eprintln!("sync_random: quiet after {round} rounds");
            break;
        }
        last = now;
    }
    let trees: Vec<_> = machines.iter().map(tree).collect();
    for (i, t) in trees.iter().enumerate().skip(1) {
        if *t != trees[0] {
            let a: BTreeSet<_> = trees[0].keys().collect();
            let b: BTreeSet<_> = t.keys().collect();
            let differ: Vec<String> = a
                .intersection(&b)
                .filter(|k| trees[0][**k] != t[**k])
                .map(|k| {
                    format!(
                        "{k}: {:?} vs {:?}",
                        String::from_utf8_lossy(&trees[0][*k]),
                        String::from_utf8_lossy(&t[*k])
                    )
                })
                .collect();
            panic!(
                "seed {seed}: machine {i} differs from machine 0: only on 0 {:?}, only on {i} {:?}, content {differ:?}",
                a.difference(&b).collect::<Vec<_>>(),
                b.difference(&a).collect::<Vec<_>>()
            );
        }
    }
    let everywhere: BTreeSet<Vec<u8>> = trees[0]
        .values()
        .cloned()
        .chain(common::tree(&mirror).into_values())
        .collect();
    let lost: Vec<String> = pushed
        .iter()
        .filter(|c| !everywhere.contains(*c))
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert!(lost.is_empty(), "seed {seed}: lost {lost:?}");
    let conflicts = trees[0]
        .keys()
        .filter(|k| k.contains(".sync-conflict-"))
        .count();
    eprintln!(
        "sync_random: {} files, {conflicts} conflict files, {} contents checked",
        trees[0].len(),
        pushed.len()
    );
}
