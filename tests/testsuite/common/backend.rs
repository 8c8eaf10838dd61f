//! The two remotes a behavioural test runs against, as another client sees them: Azurite (a
//! container of its own) and a directory remote (a mirror below the test's root). A test
//! written once over `B: Backend` runs on both (`mod azure { … }`, `mod directory { … }`).

use super::{Azurite, TestEnv, unique_container};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The history area's top-level name on both remotes.
pub const HISTORY: &str = ".devlog-history";

pub trait Backend: Sized {
    fn setup(env: &TestEnv) -> Self;
    fn remote_url(&self) -> String;
    fn sas(&self) -> Option<String>;
    /// Every blob name, history included (devlogd's own files on a directory remote left out).
    fn names(&self) -> Vec<String>;
    /// Blob names of the current view (history left out), sorted.
    fn current(&self) -> Vec<String> {
        let mut out = self.names();
        out.retain(|n| !n.starts_with(HISTORY));
        out.sort();
        out
    }
    fn get(&self, name: &str) -> Option<Vec<u8>>;
    /// Another client writes a blob.
    fn put(&self, name: &str, bytes: &[u8]);
    /// Another client deletes a blob (it must be there).
    fn delete(&self, name: &str);
}

/// A journal configured for `backend`: its URL, its SAS, `sync` appended under `[sync]`.
pub fn env_for<B: Backend>(backend: &B, env: TestEnv, sync: &str) -> TestEnv {
    let env = match backend.sas() {
        Some(sas) => env.with_sas(sas),
        None => env,
    };
    env.write_config(&format!(
        "[remote]\nurl = \"{}\"\n\n[sync]\n{sync}",
        backend.remote_url()
    ));
    env
}

/// A fresh backend and a journal configured for it.
pub fn world<B: Backend>() -> (TestEnv, B) {
    world_with("")
}

/// [`world`] with `sync` appended to the configuration's `[sync]` table.
pub fn world_with<B: Backend>(sync: &str) -> (TestEnv, B) {
    let env = TestEnv::new();
    let backend = B::setup(&env);
    (env_for(&backend, env, sync), backend)
}

pub struct AzureBackend {
    pub az: &'static Azurite,
    pub container: String,
}

impl Backend for AzureBackend {
    fn setup(_: &TestEnv) -> Self {
        AzureBackend {
            az: Azurite::shared(),
            container: unique_container("backend"),
        }
    }
    fn remote_url(&self) -> String {
        self.az.container_url(&self.container)
    }
    fn sas(&self) -> Option<String> {
        Some(self.az.account_sas())
    }
    fn names(&self) -> Vec<String> {
        self.az
            .list_blobs(&self.container)
            .into_iter()
            .map(|b| b.name)
            .collect()
    }
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.az.get_blob(&self.container, name)
    }
    fn put(&self, name: &str, bytes: &[u8]) {
        self.az.put_blob(&self.container, name, bytes);
    }
    fn delete(&self, name: &str) {
        assert!(self.az.delete_blob(&self.container, name), "{name}");
    }
}

pub struct DirectoryBackend {
    pub dir: PathBuf,
}

impl Backend for DirectoryBackend {
    fn setup(env: &TestEnv) -> Self {
        let dir = env.root().join("mirror");
        std::fs::create_dir_all(&dir).expect("creating the mirror");
        DirectoryBackend { dir }
    }
    fn remote_url(&self) -> String {
        format!("file://{}", self.dir.display())
    }
    fn sas(&self) -> Option<String> {
        None
    }
    fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = tree(&self.dir).into_keys().collect();
        out.retain(|n| !n.starts_with(".devlogd"));
        out
    }
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(name)).ok()
    }
    fn put(&self, name: &str, bytes: &[u8]) {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating the blob's directory");
        }
        std::fs::write(path, bytes).expect("writing the blob");
    }
    fn delete(&self, name: &str) {
        std::fs::remove_file(self.dir.join(name)).expect("deleting the blob");
    }
}

/// Every regular file below `dir` (no symlink followed), by `/`-separated relative name.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("reading a directory") {
            let path = entry.expect("a directory entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let name = path
                    .strip_prefix(dir)
                    .expect("below the tree")
                    .to_string_lossy()
                    .into_owned();
                out.insert(name, std::fs::read(&path).expect("reading a file"));
            }
        }
    }
    out
}
