//! The node's state dir. What it keeps of a tenant lives in that tenant's
//! folder, `tenants/<tenant-id>/`: the config it serves, as the last whole
//! snapshot (`snapshot.json`, written atomically: temp file, fsync, rename,
//! fsync of the folder) and the deltas applied to it since (`deltas.jsonl`:
//! the identity of the config they follow, then one delta a line, each
//! fsynced as it is appended), so a node that restarts
//! while the control plane is down serves what it served before; once the
//! deltas outweigh half the snapshot they are folded into a new one. Then
//! the undelivered telemetry (`outbox/`), and `gateway-key.sha256`, the hash
//! of the gateway key the control plane last accepted for that tenant.
//!
//! A node reads back only the folder whose key hash is its own key's, or,
//! with a key it has not used here, the folder of the tenant the control
//! plane names once connected: another tenant's saved config is never
//! served and its telemetry never shipped under this key. Compiled plugins
//! (`plugins/`) are keyed by content hash and belong to no tenant.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gatehouse_protocol::{ConfigDelta, ConfigIdentity, ConfigSnapshot};
use serde::Serialize;

const SNAPSHOT_FILE: &str = "snapshot.json";
const DELTAS_FILE: &str = "deltas.jsonl";
/// Deltas are folded into the snapshot once they are more than this
/// many bytes and more than half the snapshot's size.
const DELTAS_FOLDED_AFTER: u64 = 256 << 10;
const KEY_FILE: &str = "gateway-key.sha256";
const TENANTS: &str = "tenants";

/// Where a node keeps its state.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// One tenant's folder in the state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantState {
    dir: PathBuf,
    tenant_id: String,
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
    #[error("{path} holds tenant {found}'s config, not {expected}'s")]
    Foreign {
        path: String,
        found: String,
        expected: String,
    },
    #[error("`{0}` cannot be a tenant id")]
    BadTenantId(String),
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

    /// The folder of the tenant whose gateway key hashes to `key_hash`, if
    /// this node has been accepted with that key before.
    pub fn bound_to(&self, key_hash: &str) -> Result<Option<TenantState>, StateError> {
        for tenant_id in self.tenants()? {
            let tenant = self.tenant(&tenant_id)?;
            let bound = fs::read_to_string(tenant.dir.join(KEY_FILE))
                .is_ok_and(|saved| saved.trim() == key_hash);
            if bound {
                return Ok(Some(tenant));
            }
        }
        Ok(None)
    }

    /// The ids of the tenants that have a folder here.
    pub fn tenants(&self) -> Result<Vec<String>, StateError> {
        let root = self.dir.join(TENANTS);
        let entries = match fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io(&root, err)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|id| valid_tenant_id(id))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// `tenant_id`'s folder, created if needed.
    pub fn tenant(&self, tenant_id: &str) -> Result<TenantState, StateError> {
        if !valid_tenant_id(tenant_id) {
            return Err(StateError::BadTenantId(tenant_id.to_owned()));
        }
        let dir = self.dir.join(TENANTS).join(tenant_id);
        fs::create_dir_all(&dir).map_err(|source| io(&dir, source))?;
        Ok(TenantState {
            dir,
            tenant_id: tenant_id.to_owned(),
        })
    }

    /// Whether a snapshot saved by a node from before tenant folders lies at
    /// the top of the state dir (it names no gateway key: it is not served).
    pub fn has_unbound_snapshot(&self) -> bool {
        self.dir.join(SNAPSHOT_FILE).exists()
    }

    /// Whether telemetry spilled by a node from before tenant folders lies
    /// in `outbox/` at the top of the state dir (it names no tenant: it is
    /// not shipped).
    pub fn has_unbound_outbox(&self) -> bool {
        fs::read_dir(self.dir.join("outbox")).is_ok_and(|mut files| files.next().is_some())
    }
}

impl TenantState {
    /// Whose folder this is.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Where this tenant's undelivered telemetry is spilled.
    pub fn outbox_dir(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    /// Records that the control plane accepted the key hashing to
    /// `key_hash` for this tenant: the next start with it serves this
    /// folder before connecting.
    pub fn bind_key(&self, key_hash: &str) -> Result<(), StateError> {
        write_atomically(&self.dir, KEY_FILE, |file| {
            file.write_all(key_hash.as_bytes())
                .map_err(|err| io(&self.dir.join(KEY_FILE), err))
        })
    }

    /// The config saved last, if any: the snapshot with the deltas saved
    /// after it applied in turn. An error if it is not this tenant's.
    pub fn load_snapshot(&self) -> Result<Option<ConfigSnapshot>, StateError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let mut snapshot: ConfigSnapshot = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: path.display().to_string(),
                source,
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io(&path, err)),
        };
        if snapshot.tenant_id != self.tenant_id {
            return Err(StateError::Foreign {
                path: path.display().to_string(),
                found: snapshot.tenant_id,
                expected: self.tenant_id.clone(),
            });
        }
        let deltas = self.dir.join(DELTAS_FILE);
        match fs::read_to_string(&deltas) {
            Ok(text) => {
                let mut lines = text.lines();
                // Deltas that follow another snapshot (left by a crash as
                // this one was saved) are not this one's.
                let follows: Option<ConfigIdentity> = lines
                    .next()
                    .and_then(|line| serde_json::from_str(line).ok());
                if follows.as_ref() == Some(&snapshot.identity()) {
                    // An unreadable line (torn by a crash) ends the chain:
                    // no later delta follows on from the config reached.
                    snapshot.apply_chain(
                        lines.filter_map(|line| serde_json::from_str::<ConfigDelta>(line).ok()),
                    );
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io(&deltas, err)),
        }
        Ok(Some(snapshot))
    }

    /// Replaces the saved config with `snapshot`; a crash leaves the old or
    /// the new one, never a torn file.
    pub fn save_snapshot(&self, snapshot: &ConfigSnapshot) -> Result<(), StateError> {
        self.save(&snapshot.tenant_id, snapshot)
    }

    /// Replaces the saved config with `snapshot`, which encodes as a
    /// [`ConfigSnapshot`] of `tenant_id` (written as it is encoded: a large
    /// config's JSON is tens of MB that need not be held in memory), and
    /// drops the deltas saved before it.
    pub fn save(&self, tenant_id: &str, snapshot: &impl Serialize) -> Result<(), StateError> {
        if tenant_id != self.tenant_id {
            return Err(StateError::Foreign {
                path: self.dir.display().to_string(),
                found: tenant_id.to_owned(),
                expected: self.tenant_id.clone(),
            });
        }
        write_atomically(&self.dir, SNAPSHOT_FILE, |file| {
            let mut writer = BufWriter::new(file);
            serde_json::to_writer(&mut writer, snapshot).map_err(|source| StateError::Corrupt {
                path: self.dir.join(SNAPSHOT_FILE).display().to_string(),
                source,
            })?;
            writer
                .flush()
                .map_err(|err| io(&self.dir.join(SNAPSHOT_FILE), err))
        })?;
        // Left behind by a crash here, they name the snapshot they followed
        // and are not read back after this one.
        let deltas = self.dir.join(DELTAS_FILE);
        match fs::remove_file(&deltas) {
            Ok(()) => sync_dir(&self.dir),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io(&deltas, err)),
        }
    }

    /// Saves a delta that starts from `base`, given as its JSON (`line`),
    /// after the saved config. Returns whether the deltas are now due to be
    /// folded into a new snapshot (see [`save`](Self::save)): once they
    /// outweigh half the snapshot, and at once when the last one saved was
    /// torn by a crash (the deltas after it could never be applied). The
    /// file's first line names the config the deltas follow: `base`, when
    /// this is the first.
    pub fn append_delta(&self, line: &str, base: &ConfigIdentity) -> Result<bool, StateError> {
        let path = self.dir.join(DELTAS_FILE);
        let mut file = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|err| io(&path, err))?;
        let held = file.metadata().map_err(|err| io(&path, err))?.len();
        if held > 0 && ends_torn(&mut file).map_err(|err| io(&path, err))? {
            return Ok(true);
        }
        let text = if held == 0 {
            let follows = serde_json::to_string(base).map_err(|source| StateError::Corrupt {
                path: path.display().to_string(),
                source,
            })?;
            format!("{follows}\n{line}\n")
        } else {
            format!("{line}\n")
        };
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|err| io(&path, err))?;
        if held == 0 {
            sync_dir(&self.dir)?;
        }
        let appended = held + text.len() as u64;
        let snapshot = fs::metadata(self.dir.join(SNAPSHOT_FILE)).map_or(0, |m| m.len());
        Ok(appended > DELTAS_FOLDED_AFTER && appended > snapshot / 2)
    }
}

/// Whether the last byte of `file` (which holds some) is not a newline.
fn ends_torn(file: &mut File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| io(dir, err))
}

/// Writes `dir/name` through a temp file, fsynced and renamed, then fsyncs
/// the folder: a crash leaves the old file or the new one.
fn write_atomically(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut File) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&temp).map_err(|err| io(&temp, err))?;
    write(&mut file)?;
    file.sync_all().map_err(|err| io(&temp, err))?;
    drop(file);
    fs::rename(&temp, &path).map_err(|err| io(&path, err))?;
    sync_dir(dir)
}

/// A tenant id that is safe as a folder name (the control plane's are
/// UUIDs).
fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

    fn snapshot(tenant: &str, version: i64) -> ConfigSnapshot {
        ConfigSnapshot {
            tenant_id: tenant.into(),
            version,
            revision: format!("r{version}"),
            services: vec![],
            routes: vec![],
            consumers: vec![],
            rate_limits: Default::default(),
        }
    }

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("gh-state-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn saves_and_loads_the_latest_snapshot() {
        let dir = scratch();
        let state = StateDir::open(&dir).expect("opens");
        let tenant = state.tenant("t").expect("folder");
        assert!(tenant.load_snapshot().expect("reads").is_none());
        tenant.save_snapshot(&snapshot("t", 1)).expect("saves");
        tenant.save_snapshot(&snapshot("t", 2)).expect("saves");
        assert_eq!(
            tenant.load_snapshot().expect("reads"),
            Some(snapshot("t", 2))
        );
        assert!(!dir.join("tenants/t/snapshot.json.tmp").exists());
        fs::write(dir.join("tenants/t").join(SNAPSHOT_FILE), b"{ torn").expect("corrupt it");
        assert!(matches!(
            tenant.load_snapshot(),
            Err(StateError::Corrupt { .. })
        ));
        fs::remove_dir_all(dir).ok();
    }

    fn delta(from: &ConfigSnapshot, consumer: &str) -> ConfigDelta {
        ConfigDelta {
            base: from.identity(),
            version: from.version + 1,
            revision: format!("r{}", from.version + 1),
            services: Default::default(),
            routes: Default::default(),
            consumers: gatehouse_protocol::Changes {
                upserted: vec![gatehouse_protocol::ConsumerConfig {
                    id: consumer.into(),
                    api_key_hash: "h".repeat(64),
                    rate_limit_tier: "free".into(),
                }],
                removed: vec![],
            },
            rate_limits: Default::default(),
        }
    }

    fn line(delta: &ConfigDelta) -> String {
        serde_json::to_string(delta).expect("encodes")
    }

    #[test]
    fn deltas_saved_after_the_snapshot_are_applied_when_it_is_read_back() {
        let dir = scratch();
        let tenant = StateDir::open(&dir)
            .expect("opens")
            .tenant("t")
            .expect("folder");
        let path = dir.join("tenants/t").join(DELTAS_FILE);
        let first = snapshot("t", 1);
        tenant.save_snapshot(&first).expect("saves");
        let one = delta(&first, "a");
        let due = tenant
            .append_delta(&line(&one), &one.base)
            .expect("appends");
        assert!(!due, "not due yet");
        let mut expected = first.clone();
        expected.apply(one).expect("applies");
        let two = delta(&expected, "b");
        tenant
            .append_delta(&line(&two), &two.base)
            .expect("appends");
        expected.apply(two).expect("applies");
        assert_eq!(
            tenant.load_snapshot().expect("reads"),
            Some(expected.clone())
        );

        // A torn last line (a crash as it was appended): what came before
        // it is read back, and the deltas are due to be folded at once.
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("opens");
        file.write_all(br#"{"base":{"tenan"#).expect("tears");
        assert_eq!(
            tenant.load_snapshot().expect("reads"),
            Some(expected.clone())
        );
        let three = delta(&expected, "c");
        assert!(
            tenant
                .append_delta(&line(&three), &three.base)
                .expect("checks")
        );
        expected.apply(three).expect("applies");

        // Folded: the served config as the new snapshot, the deltas gone.
        // Deltas a crash left behind follow the old snapshot and are not
        // read after the new one, even those that would apply to it.
        let left = format!(
            "{}\n{}\n",
            serde_json::to_string(&first.identity()).expect("encodes"),
            line(&delta(&expected, "stale"))
        );
        tenant.save_snapshot(&expected).expect("saves");
        assert!(!path.exists());
        fs::write(&path, left).expect("left behind");
        assert_eq!(
            tenant.load_snapshot().expect("reads"),
            Some(expected.clone())
        );
        fs::remove_file(&path).expect("removed");

        // Deltas outweighing the snapshot are due to be folded into it.
        let mut big = delta(&expected, "d");
        let one = big.consumers.upserted[0].clone();
        big.consumers.upserted = vec![one; 1_000];
        let base = big.base.clone();
        let big = line(&big);
        let appends = (0..100)
            .position(|_| tenant.append_delta(&big, &base).expect("appends"))
            .expect("due at last");
        assert!(appends > 0, "not at the first");
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_key_finds_only_its_own_tenant() {
        let dir = scratch();
        let state = StateDir::open(&dir).expect("opens");
        let a = state.tenant("tenant-a").expect("folder");
        a.bind_key("hash-of-a").expect("binds");
        a.save_snapshot(&snapshot("tenant-a", 3)).expect("saves");
        let b = state.tenant("tenant-b").expect("folder");
        b.bind_key("hash-of-b").expect("binds");

        assert_eq!(state.bound_to("hash-of-a").expect("reads"), Some(a.clone()));
        assert_eq!(state.bound_to("hash-of-b").expect("reads"), Some(b.clone()));
        assert_eq!(state.bound_to("hash-of-c").expect("reads"), None);
        assert_eq!(state.tenants().expect("lists"), ["tenant-a", "tenant-b"]);
        // A snapshot of another tenant is never read back as this one's,
        // nor saved into its folder.
        fs::copy(
            dir.join("tenants/tenant-a/snapshot.json"),
            dir.join("tenants/tenant-b/snapshot.json"),
        )
        .expect("copy");
        assert!(matches!(b.load_snapshot(), Err(StateError::Foreign { .. })));
        assert!(matches!(
            b.save_snapshot(&snapshot("tenant-a", 4)),
            Err(StateError::Foreign { .. })
        ));
        assert!(matches!(
            state.tenant("../etc"),
            Err(StateError::BadTenantId(_))
        ));
        fs::remove_dir_all(dir).ok();
    }
}
