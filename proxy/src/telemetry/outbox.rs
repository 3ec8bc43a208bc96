//! Batches waiting for the control plane's ack. They live in memory up to a
//! bound (in log records), then spill to the tenant's outbox folder
//! (`<state-dir>/tenants/<id>/outbox/`) as files, up to a bound in bytes;
//! past that the oldest are dropped and counted. Spilled batches survive a
//! restart of the node. Until the node knows its tenant (a new gateway key,
//! the control plane not answered yet) the outbox is unbound: it keeps
//! batches in memory only, and binding it to the tenant's folder picks up
//! what that folder holds. Delivery is at least once; the
//! control plane stores a batch id once. A batch is kept as the frame that
//! ships it — its `telemetry` message, encoded once — so sending it again is
//! a reference count, not a copy.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gatehouse_protocol::sync::TelemetryFrame;
use gatehouse_protocol::telemetry::TelemetryBatch;
use serde::Serialize;

/// Where a waiting batch is.
#[derive(Debug)]
enum Place {
    Memory(Bytes),
    Disk(PathBuf, u64),
}

#[derive(Debug)]
struct Entry {
    batch_id: String,
    records: usize,
    place: Place,
    sent: bool,
}

/// Limits of the outbox.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Log records kept in memory before spilling.
    pub memory_records: usize,
    /// Bytes of spilled batches kept on disk before dropping.
    pub spill_bytes: u64,
}

/// Batches not yet acknowledged, oldest first.
#[derive(Debug)]
pub struct Outbox {
    entries: VecDeque<Entry>,
    /// The tenant's folder; `None` until the tenant is known.
    dir: Option<PathBuf>,
    limits: OutboxLimits,
    memory_records: usize,
    disk_bytes: u64,
    next_file: u64,
    dropped_records: u64,
}

impl Outbox {
    /// An outbox spilling to `dir`; batches spilled by an earlier run are
    /// picked up to be delivered.
    pub fn open(dir: impl Into<PathBuf>, limits: OutboxLimits) -> std::io::Result<Self> {
        let mut outbox = Self::unbound(limits);
        outbox.bind(dir.into())?;
        Ok(outbox)
    }

    /// An outbox that keeps batches in memory until it is bound.
    pub fn unbound(limits: OutboxLimits) -> Self {
        Self {
            entries: VecDeque::new(),
            dir: None,
            limits,
            memory_records: 0,
            disk_bytes: 0,
            next_file: 0,
            dropped_records: 0,
        }
    }

    /// Spills to `dir` from now on, and picks up the batches an earlier run
    /// spilled there. The batches of an outbox bound to another folder are
    /// left in that folder (they are that tenant's), not shipped from here.
    pub fn bind(&mut self, dir: PathBuf) -> std::io::Result<()> {
        if self.dir.as_ref() == Some(&dir) {
            return Ok(());
        }
        if self.dir.is_some() {
            // The batches are the other tenant's: they stay in its folder
            // (or, what cannot be written there, are dropped and counted).
            self.spill_all();
            for entry in self.entries.drain(..) {
                if let Place::Memory(_) = entry.place {
                    self.dropped_records += entry.records as u64;
                }
            }
            self.memory_records = 0;
            self.disk_bytes = 0;
            // Unbound until the new folder is read: a folder that cannot be
            // used leaves the outbox in memory, never spilling into the
            // other tenant's.
            self.dir = None;
        }
        fs::create_dir_all(&dir)?;
        let mut files: Vec<(u64, PathBuf)> = fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter_map(|path| {
                let seq = path
                    .file_stem()?
                    .to_str()?
                    .split_once('-')?
                    .0
                    .parse()
                    .ok()?;
                (path.extension()? == "json").then_some((seq, path))
            })
            .collect();
        files.sort();
        self.next_file = 0;
        // Spilled earlier, so sent first.
        let mut found = VecDeque::new();
        for (seq, path) in files {
            match read_batch(&path) {
                Some(batch) => {
                    let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    self.disk_bytes += bytes;
                    self.next_file = self.next_file.max(seq + 1);
                    found.push_back(Entry {
                        batch_id: batch.batch_id,
                        records: batch.logs.len(),
                        place: Place::Disk(path, bytes),
                        sent: false,
                    });
                }
                None => {
                    tracing::warn!(path = %path.display(), "unreadable spilled batch removed");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        if !found.is_empty() {
            tracing::info!(
                batches = found.len(),
                "undelivered telemetry found in the state dir"
            );
        }
        found.append(&mut self.entries);
        self.entries = found;
        self.dir = Some(dir);
        self.enforce_limits();
        Ok(())
    }

    /// Adds a sealed batch, spilling or dropping the oldest to stay in bounds.
    pub fn push<L: Serialize>(&mut self, batch: TelemetryBatch<L>) {
        let records = batch.logs.len();
        let batch_id = batch.batch_id.clone();
        // Sized up front: growing a buffer of a few hundred KB by doubling
        // copies it and faults in fresh pages at every step.
        let mut frame = Vec::with_capacity(encoded_size_hint(&batch));
        if let Err(err) = serde_json::to_writer(&mut frame, &TelemetryFrame { batch: &batch }) {
            tracing::error!(error = %err, "telemetry batch not encoded; dropped");
            self.dropped_records += records as u64;
            return;
        }
        self.memory_records += records;
        self.entries.push_back(Entry {
            batch_id,
            records,
            place: Place::Memory(Bytes::from(frame)),
            sent: false,
        });
        self.enforce_limits();
    }

    fn enforce_limits(&mut self) {
        if self.dir.is_none() {
            // Nowhere to spill yet: the oldest go.
            while self.memory_records > self.limits.memory_records && self.entries.len() > 1 {
                self.drop_at(0);
            }
            return;
        }
        // Spill the oldest in-memory batches (never the newest, which is
        // about to be sent) until memory is within bounds.
        let mut index = 0;
        while self.memory_records > self.limits.memory_records && index + 1 < self.entries.len() {
            if let Err(err) = self.spill(index) {
                tracing::error!(error = %err, "telemetry not spilled; dropping the oldest batch");
                self.drop_at(index);
                continue;
            }
            index += 1;
        }
        while self.disk_bytes > self.limits.spill_bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .position(|e| matches!(e.place, Place::Disk(..)))
            else {
                break;
            };
            self.drop_at(oldest);
        }
    }

    /// Moves entry `index` to disk, if it is in memory.
    fn spill(&mut self, index: usize) -> std::io::Result<()> {
        let Some(entry) = self.entries.get_mut(index) else {
            return Ok(());
        };
        let Place::Memory(frame) = &entry.place else {
            return Ok(());
        };
        let Some(dir) = &self.dir else {
            return Err(std::io::Error::other(
                "no tenant folder yet (the control plane has not named the tenant)",
            ));
        };
        let path = dir.join(format!("{:012}-{}.json", self.next_file, entry.batch_id));
        fs::write(&path, frame)?;
        let bytes = frame.len() as u64;
        self.next_file += 1;
        self.disk_bytes += bytes;
        self.memory_records -= entry.records;
        entry.place = Place::Disk(path, bytes);
        Ok(())
    }

    fn drop_at(&mut self, index: usize) {
        if let Some(entry) = self.entries.remove(index) {
            self.dropped_records += entry.records as u64;
            self.forget(&entry);
        }
    }

    fn forget(&mut self, entry: &Entry) {
        match &entry.place {
            Place::Memory(_) => self.memory_records -= entry.records,
            Place::Disk(path, bytes) => {
                self.disk_bytes = self.disk_bytes.saturating_sub(*bytes);
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Writes every in-memory batch to disk (before the process exits), so
    /// the next start delivers it.
    pub fn spill_all(&mut self) {
        if self.dir.is_none() {
            if !self.entries.is_empty() {
                tracing::warn!(
                    batches = self.entries.len(),
                    "telemetry not kept: the node never learned its tenant"
                );
            }
            return;
        }
        for index in 0..self.entries.len() {
            if let Err(err) = self.spill(index) {
                tracing::error!(error = %err, "telemetry not spilled at exit");
            }
        }
    }

    /// The next batches to send (their ids and frames: `telemetry`
    /// messages' JSON), marking them sent.
    pub fn take_unsent(&mut self) -> Vec<(String, Bytes)> {
        let mut out = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| !e.sent) {
            let frame = match &entry.place {
                Place::Memory(frame) => Some(frame.clone()),
                Place::Disk(path, _) => fs::read(path).ok().map(as_frame),
            };
            if let Some(frame) = frame {
                entry.sent = true;
                out.push((entry.batch_id.clone(), frame));
            }
        }
        out
    }

    /// The control plane stored this batch.
    pub fn ack(&mut self, batch_id: &str) {
        if let Some(index) = self.entries.iter().position(|e| e.batch_id == batch_id)
            && let Some(entry) = self.entries.remove(index)
        {
            self.forget(&entry);
        }
    }

    /// The link dropped: everything unacknowledged is sent again.
    pub fn resend_all(&mut self) {
        for entry in &mut self.entries {
            entry.sent = false;
        }
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Log records dropped because the outbox was full, since start.
    pub fn dropped_records(&self) -> u64 {
        self.dropped_records
    }

    /// Bytes spilled to disk now.
    pub fn spilled_bytes(&self) -> u64 {
        self.disk_bytes
    }
}

fn read_batch(path: &Path) -> Option<TelemetryBatch> {
    // A frame reads as its batch (the `type` key is ignored).
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// A spilled file as a frame: nodes before frames were kept spilled the bare
/// batch, which is wrapped as a `telemetry` message.
fn as_frame(json: Vec<u8>) -> Bytes {
    const TAG: &[u8] = br#"{"type":"telemetry","#;
    if json.starts_with(TAG) || !json.starts_with(b"{") {
        return Bytes::from(json);
    }
    let mut frame = Vec::with_capacity(json.len() + TAG.len());
    frame.extend_from_slice(TAG);
    frame.extend_from_slice(&json[1..]);
    Bytes::from(frame)
}

/// About how long a batch's JSON is (a log record is 300–400 bytes; a
/// minute's histogram a few hundred).
fn encoded_size_hint<L>(batch: &TelemetryBatch<L>) -> usize {
    256 + batch.logs.len() * 448
        + batch.metrics.len() * 768
        + batch.errors.len() * 384
        + batch.health.len() * 256
}

#[cfg(test)]
mod tests {
    use gatehouse_protocol::sync::NodeMessage;
    use gatehouse_protocol::telemetry::LogRecord;

    use super::*;

    fn batch(logs: usize) -> TelemetryBatch {
        TelemetryBatch {
            batch_id: uuid::Uuid::new_v4().to_string(),
            node_id: "n".into(),
            logs: (0..logs)
                .map(|i| LogRecord {
                    id: format!("l{i}"),
                    request_id: "r".into(),
                    method: "GET".into(),
                    path: "/".into(),
                    route_id: None,
                    service_id: None,
                    consumer_id: None,
                    status_code: 200,
                    latency_ms: 1.0,
                    client_ip: "127.0.0.1".into(),
                    bytes_in: 0,
                    bytes_out: 0,
                    at_ms: 0,
                })
                .collect(),
            ..TelemetryBatch::default()
        }
    }

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("gh-outbox-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn sends_acks_and_resends_after_a_drop() {
        let dir = scratch();
        let mut outbox = Outbox::open(
            &dir,
            OutboxLimits {
                memory_records: 1000,
                spill_bytes: 1 << 20,
            },
        )
        .expect("opens");
        outbox.push(batch(2));
        outbox.push(batch(3));
        let sent = outbox.take_unsent();
        assert_eq!(sent.len(), 2);
        for (id, frame) in &sent {
            let text = std::str::from_utf8(frame).expect("UTF-8");
            match gatehouse_protocol::sync::decode_node(text).expect("decodes") {
                NodeMessage::Telemetry(batch) => assert_eq!(&batch.batch_id, id),
                other => panic!("not telemetry: {other:?}"),
            }
        }
        assert!(outbox.take_unsent().is_empty(), "sent once per link");
        outbox.ack(&sent[0].0);
        outbox.resend_all();
        let again = outbox.take_unsent();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].0, sent[1].0);
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn spills_past_the_memory_bound_and_survives_a_restart() {
        let dir = scratch();
        let limits = OutboxLimits {
            memory_records: 5,
            spill_bytes: 1 << 20,
        };
        let mut outbox = Outbox::open(&dir, limits).expect("opens");
        let ids: Vec<String> = (0..4)
            .map(|_| {
                let b = batch(3);
                let id = b.batch_id.clone();
                outbox.push(b);
                id
            })
            .collect();
        assert!(outbox.spilled_bytes() > 0);
        drop(outbox);
        // A new process finds the spilled batches, oldest first.
        let mut reopened = Outbox::open(&dir, limits).expect("reopens");
        let found: Vec<String> = reopened
            .take_unsent()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(!found.is_empty());
        assert_eq!(found[0], ids[0]);
        for id in &found {
            reopened.ack(id);
        }
        assert_eq!(reopened.spilled_bytes(), 0);
        assert_eq!(
            fs::read_dir(&dir).expect("dir").count(),
            0,
            "acked files are removed"
        );
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_batch_spilled_bare_by_an_older_node_ships_as_a_message() {
        let dir = scratch();
        fs::create_dir_all(&dir).expect("dir");
        let old = batch(2);
        fs::write(
            dir.join(format!("{:012}-{}.json", 0, old.batch_id)),
            serde_json::to_vec(&old).expect("json"),
        )
        .expect("written");
        let limits = OutboxLimits {
            memory_records: 5,
            spill_bytes: 1 << 20,
        };
        let mut outbox = Outbox::open(&dir, limits).expect("opens");
        let sent = outbox.take_unsent();
        assert_eq!(sent.len(), 1);
        let text = std::str::from_utf8(&sent[0].1).expect("UTF-8");
        assert_eq!(
            gatehouse_protocol::sync::decode_node(text).expect("decodes"),
            NodeMessage::Telemetry(old)
        );
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn drops_the_oldest_past_the_disk_bound_and_counts_them() {
        let dir = scratch();
        let mut outbox = Outbox::open(
            &dir,
            OutboxLimits {
                memory_records: 1,
                spill_bytes: 600,
            },
        )
        .expect("opens");
        for _ in 0..10 {
            outbox.push(batch(2));
        }
        assert!(outbox.dropped_records() > 0);
        assert!(outbox.spilled_bytes() <= 600);
        fs::remove_dir_all(dir).ok();
    }
}
