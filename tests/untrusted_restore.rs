//! What comes down from the remote is untrusted (issue 22, the download side): restore and
//! `conflicts --fetch` write only names a push would upload, every byte checked against the
//! listing, never over a file that appeared meanwhile. Driven through the real `devlogd`
//! binary against Azurite, the directory remote and a hostile endpoint.

mod common;

use common::{Azurite, RunOutput, TestEnv, unique_container};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A remote the test can write to behind devlogd's back.
trait Backend: Sized {
    fn setup(env: &TestEnv) -> Self;
    fn remote_url(&self) -> String;
    fn sas(&self) -> Option<String>;
    /// Another writer puts a blob.
    fn put(&self, name: &str, bytes: &[u8]);
}

struct AzureBackend {
    az: &'static Azurite,
    container: String,
}

impl Backend for AzureBackend {
    fn setup(_: &TestEnv) -> Self {
        AzureBackend {
            az: Azurite::shared(),
            container: unique_container("untrusted"),
        }
    }
    fn remote_url(&self) -> String {
        self.az.container_url(&self.container)
    }
    fn sas(&self) -> Option<String> {
        Some(self.az.account_sas())
    }
    fn put(&self, name: &str, bytes: &[u8]) {
        self.az.put_blob(&self.container, name, bytes);
    }
}

struct DirectoryBackend {
    dir: PathBuf,
}

impl Backend for DirectoryBackend {
    fn setup(env: &TestEnv) -> Self {
        let dir = env.root().join("mirror");
        std::fs::create_dir_all(&dir).unwrap();
        DirectoryBackend { dir }
    }
    fn remote_url(&self) -> String {
        format!("file://{}", self.dir.display())
    }
    fn sas(&self) -> Option<String> {
        None
    }
    fn put(&self, name: &str, bytes: &[u8]) {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn env_for<B: Backend>(backend: &B, env: TestEnv) -> TestEnv {
    let env = match backend.sas() {
        Some(sas) => env.with_sas(sas),
        None => env,
    };
    env.write_config(&format!("[remote]\nurl = \"{}\"\n", backend.remote_url()));
    env
}

fn world<B: Backend>() -> (TestEnv, B) {
    let env = TestEnv::new();
    let backend = B::setup(&env);
    (env_for(&backend, env), backend)
}

/// Every regular file below `dir` (symlinks and all): relative name → bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.insert(name, std::fs::read(&path).unwrap());
            } else {
                out.insert(name, b"<not a regular file>".to_vec());
            }
        }
    }
    out
}

/// `devlogd ARGS --json`, checked for `code`; returns the parsed report.
fn json(env: &TestEnv, args: &[&str], code: i32) -> (serde_json::Value, RunOutput) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = env.run(&all);
    out.assert_code(code);
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}): {}\n{}",
            out.stdout, out.stderr
        )
    });
    (report, out)
}

fn strings(report: &serde_json::Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no list {key} in {report}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("{v}")).to_string())
        .collect();
    v.sort();
    v
}

// ---- A. names that come down obey the rules of names that go up --------------------------

/// Names another writer planted that a push from here would never upload: git's config
/// (core.fsmonitor runs a command), an ignore file of `*` (stops every later upload), a
/// hidden file, a built-in skip, a name the local `.devlogignore` excludes, and one the
/// include rules do not take.
const PLANTED: &[(&str, &[u8])] = &[
    (".git/config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n"),
    (".devlogignore", b"*\n"),
    ("a/.hidden.md", b"hidden\n"),
    ("target/t.md", b"built\n"),
    ("private/p.md", b"kept out by the local .devlogignore\n"),
    ("image.png", b"png\n"),
];

fn restore_writes_only_names_a_push_would_upload<B: Backend>() {
    let (env, backend) = world::<B>();
    env.write_file(".devlogignore", "private/\n");
    env.write_file("notes.md", "mine\n");
    json(&env, &["push"], 0);
    for (name, bytes) in PLANTED {
        backend.put(name, bytes);
    }
    let mut planted: Vec<String> = PLANTED.iter().map(|(n, _)| n.to_string()).collect();
    planted.sort();

    // Into another directory: only the journal's file arrives.
    let out = env.root().join("out");
    let (report, _) = json(&env, &["restore", "--to", out.to_str().unwrap()], 0);
    assert_eq!(strings(&report, "skipped"), planted, "{report}");
    assert!(strings(&report, "failed").is_empty(), "{report}");
    let got: Vec<String> = tree(&out).into_keys().collect();
    assert_eq!(got, vec!["notes.md"], "{report}");

    // Into the journal itself: the local ignore file stays ours, nothing planted appears.
    std::fs::remove_file(env.journal().join("notes.md")).unwrap();
    let run = env.run(&["restore"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("skipped") && run.stdout.contains(".git/config"),
        "{}",
        run.stdout
    );
    let got: Vec<String> = tree(&env.journal()).into_keys().collect();
    assert_eq!(got, vec![".devlogignore", "notes.md"], "{}", run.stdout);
    assert_eq!(
        std::fs::read(env.journal().join(".devlogignore")).unwrap(),
        b"private/\n"
    );
}

// ---- C. a kept local copy: a name nobody can predict, its extension kept ---------------

fn overwrite_keeps_the_local_file_under_an_unpredictable_name_that_is_backed_up<B: Backend>() {
    let (env, _backend) = world::<B>();
    env.write_file("notes.md", "remote\n");
    json(&env, &["push"], 0);
    env.write_file("notes.md", "local\n");
    let (report, _) = json(&env, &["restore", "--overwrite"], 0);
    let kept = report["replaced_local"][0]["kept_as"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"))
        .to_string();
    // notes.local-20261203T101500Z-k3x9qa.md
    let middle = kept
        .strip_prefix("notes.local-")
        .and_then(|k| k.strip_suffix(".md"))
        .unwrap_or_else(|| panic!("{kept}"));
    let (stamp, random) = middle.split_once('-').unwrap_or_else(|| panic!("{kept}"));
    assert!(stamp.len() == 16 && stamp.ends_with('Z'), "{kept}");
    assert!(
        random.len() == 6
            && random
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{kept}"
    );
    assert_eq!(
        std::fs::read(env.journal().join(&kept)).unwrap(),
        b"local\n"
    );
    assert_eq!(
        std::fs::read(env.journal().join("notes.md")).unwrap(),
        b"remote\n"
    );
    // The kept copy is a name a push uploads.
    let (report, _) = json(&env, &["push"], 0);
    assert_eq!(report["uploaded"], 1, "{report}");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod azure {
            use super::*;
            $( #[test] fn $name() { super::$name::<AzureBackend>(); } )*
        }
        mod directory {
            use super::*;
            $( #[test] fn $name() { super::$name::<DirectoryBackend>(); } )*
        }
    };
}

suite!(
    restore_writes_only_names_a_push_would_upload,
    overwrite_keeps_the_local_file_under_an_unpredictable_name_that_is_backed_up,
);
