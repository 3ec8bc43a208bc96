//! The node's state dir: the last config snapshot, written atomically (temp
//! file, fsync, rename, fsync of the folder) so a node that restarts while
//! the control plane is down serves what it served before.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use gatehouse_protocol::ConfigSnapshot;

const SNAPSHOT_FILE: &str = "snapshot.json";

/// Where a node keeps its state.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// Why the state dir could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a config snapshot: {source}")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
}

impl StateDir {
    /// Uses `dir`, creating it if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| io(&dir, source))?;
        Ok(Self { dir })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The snapshot saved last, if any.
    pub fn load_snapshot(&self) -> Result<Option<ConfigSnapshot>, StateError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StateError::Corrupt {
                        path: path.display().to_string(),
                        source,
                    })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io(&path, err)),
        }
    }

    /// Replaces the saved snapshot; a crash leaves the old or the new one,
    /// never a torn file.
    pub fn save_snapshot(&self, snapshot: &ConfigSnapshot) -> Result<(), StateError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let temp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let file = File::create(&temp).map_err(|err| io(&temp, err))?;
        // Streamed to the file: a large config's JSON is tens of MB that
        // need not be held in memory beside the snapshot.
        let mut writer = BufWriter::new(file);
        serde_json::to_writer(&mut writer, snapshot).map_err(|source| StateError::Corrupt {
            path: temp.display().to_string(),
            source,
        })?;
        let file = writer
            .into_inner()
            .map_err(|err| io(&temp, err.into_error()))?;
        file.sync_all().map_err(|err| io(&temp, err))?;
        drop(file);
        fs::rename(&temp, &path).map_err(|err| io(&path, err))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|err| io(&self.dir, err))
    }
}

fn io(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(version: i64) -> ConfigSnapshot {
        ConfigSnapshot {
            tenant_id: "t".into(),
            version,
            services: vec![],
            routes: vec![],
            consumers: vec![],
            rate_limits: Default::default(),
        }
    }

    #[test]
    fn saves_and_loads_the_latest_snapshot() {
        let dir = std::env::temp_dir().join(format!("gh-state-{}", std::process::id()));
        let state = StateDir::open(&dir).expect("opens");
        assert!(state.load_snapshot().expect("reads").is_none());
        state.save_snapshot(&snapshot(1)).expect("saves");
        state.save_snapshot(&snapshot(2)).expect("saves");
        assert_eq!(state.load_snapshot().expect("reads"), Some(snapshot(2)));
        assert!(!dir.join("snapshot.json.tmp").exists());
        fs::write(dir.join(SNAPSHOT_FILE), b"{ torn").expect("corrupt it");
        assert!(matches!(
            state.load_snapshot(),
            Err(StateError::Corrupt { .. })
        ));
        fs::remove_dir_all(dir).ok();
    }
}
