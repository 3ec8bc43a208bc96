//! The tenant plugins a node has: components fetched from the control plane
//! by SHA-256 (over the gateway link), checked against their hash, kept in
//! `<state-dir>/plugins/` so a restart needs no control plane, and compiled
//! once (the compiled artifact is kept too, in `plugins/compiled/`). The hot
//! path reads the loaded set lock-free. A component that fails to compile
//! or link is remembered with the reason and reported once (see
//! [`Registry::on_refusal`]): it is not asked for again while the node
//! runs, and a route using it fails with that reason. A hash asked for is
//! not asked for again until its answer came or the link was made again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// The plugins asked for, by hash (for logs and errors).
    wanted: Mutex<HashMap<String, Wanted>>,
    /// Why a component could not be loaded, by hash.
    refused: Mutex<HashMap<String, String>>,
    /// Hashes asked of the control plane and not answered yet.
    fetching: Mutex<HashSet<String>>,
    /// Told of each component refused.
    report: Option<Box<dyn Fn(Refused) + Send + Sync>>,
}

/// A component no node of this build can load.
#[derive(Debug, Clone)]
pub struct Refused {
    pub sha256: String,
    /// The plugin a config asked for under that hash, if known.
    pub wanted: Option<Wanted>,
    pub reason: String,
}

/// A plugin a config asked for, as the tenant knows it.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub name: String,
    pub plugin_id: String,
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
            wanted: Default::default(),
            refused: Default::default(),
            fetching: Default::default(),
            report: None,
        })
    }

    /// Calls `report` for each component refused (once a hash).
    pub fn on_refusal(mut self, report: impl Fn(Refused) + Send + Sync + 'static) -> Self {
        self.report = Some(Box::new(report));
        self
    }

    /// The loaded plugin with this hash.
    pub fn get(&self, sha256: &str) -> Option<Arc<LoadedPlugin>> {
        self.loaded.load().get(sha256).cloned()
    }

    /// Why the component with this hash could not be loaded, if it was
    /// refused.
    pub fn refusal(&self, sha256: &str) -> Option<String> {
        lock(&self.refused).get(sha256).cloned()
    }

    /// The plugin a config asked for under this hash.
    pub fn wanted(&self, sha256: &str) -> Option<Wanted> {
        lock(&self.wanted).get(sha256).cloned()
    }

    /// Hashes `snapshot` refers to that are neither loaded, refused nor
    /// being fetched, now marked as being fetched; those kept on disk are
    /// loaded on the way (blocking: compiles).
    pub fn missing(&self, snapshot: &ConfigSnapshot) -> Vec<String> {
        let mut wanted: Vec<(String, Wanted)> = snapshot
            .routes
            .iter()
            .flat_map(|r| {
                r.plugins.iter().map(|p| {
                    let wanted = Wanted {
                        name: p.name.to_string(),
                        plugin_id: p.plugin_id.clone(),
                    };
                    (p.sha256.clone(), wanted)
                })
            })
            .collect();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        wanted.dedup_by(|a, b| a.0 == b.0);
        let mut missing = Vec::new();
        for (sha256, plugin) in wanted {
            if self.get(&sha256).is_some()
                || self.refusal(&sha256).is_some()
                || lock(&self.fetching).contains(&sha256)
            {
                continue;
            }
            let name = plugin.name.clone();
            lock(&self.wanted).insert(sha256.clone(), plugin);
            let kept = std::fs::read(self.path(&sha256)).ok();
            let installed = kept.is_some_and(|bytes| self.install(&sha256, &name, &bytes).is_ok());
            if !installed && self.refusal(&sha256).is_none() {
                lock(&self.fetching).insert(sha256.clone());
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
        let plugin = match self
            .engine
            .load_cached(name, sha256, bytes, &self.artifacts)
        {
            Ok(plugin) => Arc::new(plugin),
            Err(err) => {
                self.refuse(sha256, name, &err);
                return Err(err.into());
            }
        };
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
        let name = self.wanted(sha256).map(|w| w.name);
        let installed = self.install(sha256, name.as_deref().unwrap_or(sha256), bytes);
        self.fetched(sha256);
        installed
    }

    /// The control plane answered for `sha256` (with or without it).
    pub fn fetched(&self, sha256: &str) {
        lock(&self.fetching).remove(sha256);
    }

    /// Forgets the hashes asked for: the link they were asked on is gone,
    /// and the next one asks again.
    pub fn forget_fetches(&self) {
        lock(&self.fetching).clear();
    }

    /// Records why `sha256` cannot be loaded when that is for good (a
    /// component that does not compile or link), and reports it once; a
    /// failure that may pass (its `describe` call failed) is only logged.
    fn refuse(&self, sha256: &str, name: &str, err: &super::engine::LoadError) {
        let reason = err.to_string();
        if !err.is_permanent() {
            tracing::warn!(plugin = name, sha256, error = %reason, "tenant plugin not loaded; will try again");
            return;
        }
        tracing::error!(plugin = name, sha256, error = %reason, "tenant plugin not installed");
        let first = lock(&self.refused)
            .insert(sha256.to_owned(), reason.clone())
            .is_none();
        if let (true, Some(report)) = (first, &self.report) {
            report(Refused {
                sha256: sha256.to_owned(),
                wanted: self.wanted(sha256),
                reason,
            });
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        // The hash is hex (checked before install); keep the name safe anyway.
        let safe: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
        self.dir.join(format!("{safe}.wasm"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
