//! A remote's optional capabilities, after rclone's `Features`: the core [`Remote`] trait
//! is what every backend implements; a backend fills in here only what it has, and callers
//! ask for the part they need.
//!
//! [`Remote`]: super::Remote

use super::azure::sas::SasInfo;
use super::limit::Limiter;
use std::sync::Mutex;

#[derive(Default)]
pub struct Features<'a> {
    /// The gate its requests go through, for remotes whose requests cross a network (their
    /// concurrency adapts to the path); `None` for local ones.
    pub limiter: Option<&'a Limiter>,
    /// The SAS token in use, as far as it can be read without the service.
    pub sas: Option<&'a SasInfo>,
    /// What the remote created on the way, for remotes that create their container.
    pub created: Option<&'a Created>,
}

/// A container a remote created when it found it missing, said once: a typo in the
/// container name creates a new one, and people must hear of it.
#[derive(Debug, Default)]
pub struct Created(Mutex<Option<String>>);

impl Created {
    pub fn note(&self, container: &str) {
        if let Ok(mut note) = self.0.lock() {
            *note = Some(container.to_string());
        }
    }

    /// The container created since the last call.
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut note| note.take())
    }
}
