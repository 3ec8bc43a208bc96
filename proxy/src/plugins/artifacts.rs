//! Compiled plugins kept on disk, so a node restart (or a second load of
//! the same component) skips compilation — seconds for a language runtime.
//! An artifact is named by the component's SHA-256 and the engine's
//! compatibility hash (wasmtime version and every setting that changes
//! generated code), so an upgraded or reconfigured node never reads an
//! artifact it cannot run; it compiles and writes a fresh one instead.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where one engine keeps its artifacts.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    compatibility: String,
}

impl ArtifactCache {
    /// A cache in `dir` for artifacts of `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            compatibility: format!("{:016x}", hasher.finish()),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        let safe: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
        self.dir
            .join(format!("{safe}-{}.cwasm", self.compatibility))
    }

    /// The component with this hash, from its artifact if there is a good
    /// one, else compiled from `bytes` (and the artifact written).
    pub fn component(
        &self,
        engine: &Engine,
        sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let path = self.path(sha256);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok(component),
                Err(err) => {
                    tracing::warn!(error = %err, path = %path.display(), "compiled plugin unusable; compiling again");
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(err) = self.write(&path, &component) {
            tracing::warn!(error = %err, "compiled plugin not kept on disk");
        }
        Ok(component)
    }

    fn write(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // A name of its own: two installs of one component may race.
        let tmp = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, component.serialize()?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Loads an artifact this node wrote.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime runs deserialized code as is, so it must come from
    // `Component::serialize` of a compatible engine. Artifacts are only ever
    // written by `ArtifactCache::write` of this node, into its own state
    // dir (as private as its binary), under the engine's compatibility
    // hash; wasmtime also checks the header and version before use. Anyone
    // able to write there could as well replace the node's binary.
    unsafe { Component::deserialize_file(engine, path) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::builtins::TESTBED;

    #[test]
    fn compiles_once_then_reads_the_artifact_and_survives_a_bad_one() {
        let dir = std::env::temp_dir().join(format!("gh-artifacts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::default();
        let cache = ArtifactCache::new(dir.clone(), &engine);
        cache
            .component(&engine, "abc123", TESTBED)
            .expect("compiles");
        let artifact = cache.path("abc123");
        assert!(artifact.exists(), "the artifact is kept");
        let written = std::fs::metadata(&artifact)
            .expect("meta")
            .modified()
            .expect("mtime");
        // A second load reads it (the bytes given are not even looked at).
        cache
            .component(&engine, "abc123", b"not wasm")
            .expect("from disk");
        assert_eq!(
            std::fs::metadata(&artifact)
                .expect("meta")
                .modified()
                .expect("mtime"),
            written
        );
        // A damaged artifact is compiled again and replaced.
        std::fs::write(&artifact, b"garbage").expect("damage");
        cache
            .component(&engine, "abc123", TESTBED)
            .expect("recompiles");
        assert!(std::fs::read(&artifact).expect("read").len() > 1000);
        // Another engine configuration never reads these artifacts.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).expect("engine");
        assert_ne!(
            ArtifactCache::new(dir.clone(), &other).path("abc123"),
            artifact
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
