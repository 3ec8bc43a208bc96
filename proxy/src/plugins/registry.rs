//! The tenant plugins a node has: components fetched from the control plane
//! by SHA-256 (over the gateway link), checked against their hash, kept in
//! `<state-dir>/plugins/` so a restart needs no control plane, and compiled
//! once (the compiled artifact is kept too, in `plugins/compiled/`). The hot
//! path reads the loaded set lock-free.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_protocol::ConfigSnapshot;
use sha2::{Digest, Sha256};

use super::artifacts::ArtifactCache;
use super::engine::PluginEngine;
use super::runtime::LoadedPlugin;

/// Loaded tenant plugins by SHA-256.
pub struct Registry {
    engine: Arc<PluginEngine>,
    dir: PathBuf,
    artifacts: ArtifactCache,
    loaded: ArcSwap<HashMap<String, Arc<LoadedPlugin>>>,
    /// Names of the plugins asked for, by hash (for logs and errors).
    names: std::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("loaded", &self.loaded.load().len())
            .finish_non_exhaustive()
    }
}

/// Why a component was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the bytes do not hash to {0}")]
    HashMismatch(String),
    #[error(transparent)]
    Load(#[from] super::engine::LoadError),
    #[error("cannot keep the component: {0}")]
    Io(#[from] std::io::Error),
}

impl Registry {
    /// A registry keeping components in `dir`.
    pub fn new(engine: Arc<PluginEngine>, dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let artifacts = ArtifactCache::new(dir.join("compiled"), engine.engine());
        Ok(Self {
            engine,
            dir,
            artifacts,
            loaded: ArcSwap::from_pointee(HashMap::new()),
            names: Default::default(),
        })
    }

    /// The loaded plugin with this hash.
    pub fn get(&self, sha256: &str) -> Option<Arc<LoadedPlugin>> {
        self.loaded.load().get(sha256).cloned()
    }

    /// Hashes `snapshot` refers to that are not loaded; those kept on disk
    /// are loaded on the way (blocking: compiles).
    pub fn missing(&self, snapshot: &ConfigSnapshot) -> Vec<String> {
        let mut wanted: Vec<(String, String)> = snapshot
            .routes
            .iter()
            .flat_map(|r| r.plugins.iter().map(|p| (p.sha256.clone(), p.name.clone())))
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut missing = Vec::new();
        for (sha256, name) in wanted {
            if self.get(&sha256).is_some() {
                continue;
            }
            self.names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(sha256.clone(), name.clone());
            let kept = std::fs::read(self.path(&sha256)).ok();
            let installed = kept.is_some_and(|bytes| self.install(&sha256, &name, &bytes).is_ok());
            if !installed {
                missing.push(sha256);
            }
        }
        missing
    }

    /// Checks `bytes` against `sha256`, compiles them, keeps them on disk,
    /// and makes them available to the hot path (blocking: compiles).
    pub fn install(&self, sha256: &str, name: &str, bytes: &[u8]) -> Result<(), InstallError> {
        let actual: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if actual != sha256 {
            return Err(InstallError::HashMismatch(sha256.to_owned()));
        }
        let plugin = Arc::new(
            self.engine
                .load_cached(name, sha256, bytes, &self.artifacts)?,
        );
        let path = self.path(sha256);
        if !path.exists() {
            std::fs::write(&path, bytes)?;
        }
        self.loaded.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(sha256.to_owned(), Arc::clone(&plugin));
            next
        });
        tracing::info!(plugin = name, sha256, "tenant plugin loaded");
        Ok(())
    }

    /// Installs a component the control plane sent for a hash asked for.
    pub fn install_fetched(&self, sha256: &str, bytes: &[u8]) -> Result<(), InstallError> {
        let name = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
            .cloned();
        self.install(sha256, name.as_deref().unwrap_or(sha256), bytes)
    }

    fn path(&self, sha256: &str) -> PathBuf {
        // The hash is hex (checked before install); keep the name safe anyway.
        let safe: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
        self.dir.join(format!("{safe}.wasm"))
    }
}
