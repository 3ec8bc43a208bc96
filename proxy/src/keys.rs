//! API-key lookup: an index of the consumers' key hashes from the snapshot,
//! fronted by caches of recent keys so a busy key is not SHA-256'd on every
//! request. The caches hold no key: they are keyed by a 128-bit keyed hash
//! of the presented key (SipHash under random keys made once per process),
//! and misses have a cache of their own, small and short-lived, so a flood
//! of guessed keys can neither fill memory nor evict the real keys' hits.
//! The index and its caches belong to one config version: a revoked key
//! stops working the moment the next version is swapped in, with no TTL to
//! wait for.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use gatehouse_protocol::{Changes, ConsumerConfig};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Known keys remembered per config version (at most one a consumer).
const CACHE_CAPACITY: u64 = 100_000;
/// How long an unused cached key is kept.
const CACHE_IDLE: Duration = Duration::from_secs(600);
/// Unknown keys remembered per config version.
pub const MISS_CAPACITY: u64 = 10_000;
/// The most consumers a change patches into a copy of the index; more, and
/// it is built again (each one patched in moves a part of the id order).
const MAX_PATCHED: usize = 256;
/// How long an unknown key is remembered.
const MISS_TTL: Duration = Duration::from_secs(60);

/// What the caches are keyed by: a keyed hash of the presented key, so the
/// key itself is never kept, under keys no one outside this process knows.
struct KeyTag([RandomState; 2]);

impl KeyTag {
    fn of(&self, key: &str) -> u128 {
        let [high, low] = &self.0;
        (u128::from(high.hash_one(key)) << 64) | u128::from(low.hash_one(key))
    }
}

static KEY_TAG: LazyLock<KeyTag> =
    LazyLock::new(|| KeyTag([RandomState::new(), RandomState::new()]));
/// Keys longer than this are refused without hashing.
const MAX_KEY_LEN: usize = 256;

/// A consumer as the hot path needs it: its id and a shared string, so a
/// copy is at most two reference counts. A tenant has few tiers, so each
/// tier's name is one allocation shared by its consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub id: ConsumerId,
    pub rate_limit_tier: Arc<str>,
}

/// A consumer's id: 16 bytes when it is a UUID in canonical form (what the
/// control plane makes), shared text otherwise. As shared strings, 100,000
/// ids were 6 MB of allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerId {
    Uuid(Uuid),
    Text(Arc<str>),
}

/// The length of a UUID's text.
pub const ID_LEN: usize = uuid::fmt::Hyphenated::LENGTH;
/// Room for a UUID's text.
pub type IdBuffer = [u8; ID_LEN];

impl ConsumerId {
    pub fn new(id: &str) -> Self {
        match IdKey::of(id) {
            IdKey::Uuid(uuid) => Self::Uuid(uuid),
            IdKey::Text(text) => Self::Text(Arc::from(text)),
        }
    }

    /// The id's text, written into `buffer` when it is a UUID.
    pub fn as_str<'a>(&'a self, buffer: &'a mut IdBuffer) -> &'a str {
        match self {
            Self::Uuid(uuid) => uuid.hyphenated().encode_lower(buffer),
            Self::Text(text) => text,
        }
    }

    fn key(&self) -> IdKey<'_> {
        match self {
            Self::Uuid(uuid) => IdKey::Uuid(*uuid),
            Self::Text(text) => IdKey::Text(text),
        }
    }
}

impl std::fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str(&mut [0; ID_LEN]))
    }
}

impl From<&str> for ConsumerId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

/// An id as the by-id order sees it, borrowed: a looked-up id is compared
/// without being copied.
#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
enum IdKey<'a> {
    Uuid(Uuid),
    Text(&'a str),
}

impl<'a> IdKey<'a> {
    /// A UUID only when its canonical text is exactly `id`, so that every
    /// id keeps its own text.
    fn of(id: &'a str) -> Self {
        match Uuid::try_parse(id) {
            Ok(uuid) if uuid.hyphenated().encode_lower(&mut [0; ID_LEN]) == id => Self::Uuid(uuid),
            _ => Self::Text(id),
        }
    }
}

/// Consumers by API key and by id. The consumers are stored once; the key
/// map and the id order hold their positions. With 100,000 consumers this
/// is about 10 MB by count: 4 MB of consumers (40 bytes each, UUID ids
/// inline), 5.2 MB of key map, 0.4 MB of id order (heaptrack measured 28 MB
/// when each map held a shared consumer allocation with its own copy of the
/// id and tier).
pub struct KeyIndex {
    /// Every consumer indexed, and those a patch took out (`gone` of them),
    /// which no key or id finds any more.
    consumers: Vec<Consumer>,
    gone: usize,
    by_hash: HashMap<[u8; 32], u32>,
    /// Positions in `consumers`, in the order of their ids.
    by_id: Vec<u32>,
    /// Key tag → position in `consumers`.
    hits: Cache<u128, u32>,
    /// Tags of keys that matched nothing.
    misses: Cache<u128, ()>,
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex")
            .field("consumers", &self.by_hash.len())
            .finish_non_exhaustive()
    }
}

impl KeyIndex {
    /// Indexes the consumers of a snapshot; entries whose hash is not 64 hex
    /// digits are skipped (they could never match).
    pub fn build(configs: &[ConsumerConfig]) -> Self {
        let mut builder = Builder::with_capacity(configs.len());
        for c in configs {
            builder.add_config(c);
        }
        builder.finish()
    }

    /// This index with `changes` applied (a config delta's consumers), its
    /// caches new: a key revoked or moved to another consumer can no more
    /// be found through them than in a built index.
    ///
    /// Up to [`MAX_PATCHED`] changes patch copies of the maps (copied whole,
    /// not entry by entry: indexing 100,000 consumers again was most of a
    /// change's time to the node); the consumers taken out stay in the
    /// list, found by nothing, until they are a quarter of it. A larger
    /// change, or then, builds the index again from what is live.
    pub fn patched(&self, changes: &Changes<ConsumerConfig>) -> Self {
        let changed = changes.upserted.len() + changes.removed.len();
        let taken_out: HashSet<u32> = named(changes)
            .filter_map(|id| self.position_of_id(id))
            .collect();
        let gone = self.gone + taken_out.len();
        if changed > MAX_PATCHED || gone > self.consumers.len() / 4 + 64 {
            return self.rebuilt(changes);
        }
        let mut builder = Builder {
            // A tenant has few tiers: the first consumers name them.
            tiers: self
                .consumers
                .iter()
                .take(64)
                .map(|c| Arc::clone(&c.rate_limit_tier))
                .collect(),
            consumers: self.consumers.clone(),
            by_hash: self.by_hash.clone(),
        };
        let mut by_id = self.by_id.clone();
        if !taken_out.is_empty() {
            builder
                .by_hash
                .retain(|_, position| !taken_out.contains(position));
            by_id.retain(|position| !taken_out.contains(position));
        }
        for config in &changes.upserted {
            let Some(position) = builder.add_config(config) else {
                continue;
            };
            let consumers = &builder.consumers;
            let key = consumers[position as usize].id.key();
            let at = by_id.partition_point(|p| consumers[*p as usize].id.key() < key);
            by_id.insert(at, position);
        }
        builder.finish_sorted(by_id, gone)
    }

    /// The index of what is live here with `changes` applied, built anew.
    fn rebuilt(&self, changes: &Changes<ConsumerConfig>) -> Self {
        let replaced: HashSet<IdKey<'_>> = named(changes).map(IdKey::of).collect();
        let mut builder = Builder::with_capacity(self.by_hash.len() + changes.upserted.len());
        for (hash, position) in &self.by_hash {
            let consumer = &self.consumers[*position as usize];
            if !replaced.contains(&consumer.id.key()) {
                builder.add(*hash, consumer.clone());
            }
        }
        for c in &changes.upserted {
            builder.add_config(c);
        }
        builder.finish()
    }

    /// Where the live consumer `id` is in `consumers`.
    fn position_of_id(&self, id: &str) -> Option<u32> {
        let wanted = IdKey::of(id);
        let found = self
            .by_id
            .binary_search_by(|p| self.consumers[*p as usize].id.key().cmp(&wanted))
            .ok()?;
        Some(self.by_id[found])
    }

    /// Every indexed consumer as a snapshot names it (key hash as hex), in
    /// no particular order: what a node saves of its consumers.
    pub fn configs(&self) -> impl Iterator<Item = ConsumerConfig> + '_ {
        self.by_hash.iter().map(|(hash, position)| {
            let consumer = &self.consumers[*position as usize];
            ConsumerConfig {
                id: consumer.id.to_string(),
                api_key_hash: encode_hex(hash),
                rate_limit_tier: consumer.rate_limit_tier.to_string(),
            }
        })
    }

    /// How many consumers are indexed.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no consumer is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The consumer whose key this is, through the caches.
    pub fn lookup(&self, key: &str) -> Option<Consumer> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        let tag = KEY_TAG.of(key);
        if let Some(position) = self.hits.get(&tag) {
            return self.consumers.get(position as usize).cloned();
        }
        if self.misses.contains_key(&tag) {
            return None;
        }
        match self.position(key) {
            Some(position) => {
                self.hits.insert(tag, position);
                self.consumers.get(position as usize).cloned()
            }
            None => {
                self.misses.insert(tag, ());
                None
            }
        }
    }

    /// The consumer with this id (as an auth plugin names it).
    pub fn by_id(&self, id: &str) -> Option<Consumer> {
        Some(self.consumers[self.position_of_id(id)? as usize].clone())
    }

    /// The consumer whose key this is, hashing every time (the baseline the
    /// cache is measured against).
    pub fn lookup_uncached(&self, key: &str) -> Option<Consumer> {
        self.consumers.get(self.position(key)? as usize).cloned()
    }

    fn position(&self, key: &str) -> Option<u32> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_hash.get(&digest).copied()
    }

    /// Entries in the hit and miss caches (after pending evictions).
    pub fn cached(&self) -> (u64, u64) {
        self.hits.run_pending_tasks();
        self.misses.run_pending_tasks();
        (self.hits.entry_count(), self.misses.entry_count())
    }
}

/// A [`KeyIndex`] being filled. A tenant has few tiers, so each tier's
/// name is one allocation shared by its consumers.
struct Builder {
    tiers: HashSet<Arc<str>>,
    consumers: Vec<Consumer>,
    by_hash: HashMap<[u8; 32], u32>,
}

impl Builder {
    fn with_capacity(consumers: usize) -> Self {
        Self {
            tiers: HashSet::new(),
            consumers: Vec::with_capacity(consumers),
            by_hash: HashMap::with_capacity(consumers),
        }
    }

    /// Adds a snapshot's consumer, unless its hash is malformed; returns
    /// its position.
    fn add_config(&mut self, config: &ConsumerConfig) -> Option<u32> {
        let hash = decode_hex(&config.api_key_hash)?;
        let tier = match self.tiers.get(config.rate_limit_tier.as_str()) {
            Some(tier) => Arc::clone(tier),
            None => Arc::from(config.rate_limit_tier.as_str()),
        };
        self.add(
            hash,
            Consumer {
                id: ConsumerId::new(&config.id),
                rate_limit_tier: tier,
            },
        )
    }

    /// Adds `consumer` with the key hash `hash`; returns its position
    /// (`None`: the index is full).
    fn add(&mut self, hash: [u8; 32], consumer: Consumer) -> Option<u32> {
        let position = u32::try_from(self.consumers.len()).ok()?;
        if !self.tiers.contains(&*consumer.rate_limit_tier) {
            self.tiers.insert(Arc::clone(&consumer.rate_limit_tier));
        }
        self.consumers.push(consumer);
        self.by_hash.insert(hash, position);
        Some(position)
    }

    fn finish(self) -> KeyIndex {
        let mut by_id: Vec<u32> = (0..self.consumers.len() as u32).collect();
        by_id.sort_unstable_by(|a, b| {
            (self.consumers[*a as usize].id.key()).cmp(&self.consumers[*b as usize].id.key())
        });
        self.finish_sorted(by_id, 0)
    }

    /// The index, with `by_id` already in id order and `gone` consumers
    /// found by nothing.
    fn finish_sorted(self, by_id: Vec<u32>, gone: usize) -> KeyIndex {
        KeyIndex {
            consumers: self.consumers,
            gone,
            by_hash: self.by_hash,
            by_id,
            hits: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_idle(CACHE_IDLE)
                .build(),
            misses: Cache::builder()
                .max_capacity(MISS_CAPACITY)
                .time_to_live(MISS_TTL)
                .build(),
        }
    }
}

/// The ids a delta's consumer changes name: those removed and upserted.
fn named(changes: &Changes<ConsumerConfig>) -> impl Iterator<Item = &str> {
    changes
        .removed
        .iter()
        .map(String::as_str)
        .chain(changes.upserted.iter().map(|c| c.id.as_str()))
}

fn encode_hex(bytes: &[u8; 32]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn consumer(id: &str, key: &str) -> ConsumerConfig {
        ConsumerConfig {
            id: id.into(),
            api_key_hash: sha256_hex(key),
            rate_limit_tier: "free".into(),
        }
    }

    #[test]
    fn finds_consumers_by_key_and_caches_misses_too() {
        let index = KeyIndex::build(&[consumer("a", "ck_alpha"), consumer("b", "ck_beta")]);
        assert_eq!(index.len(), 2);
        assert_eq!(
            index
                .lookup("ck_alpha")
                .map(|c| c.id.to_string())
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            index
                .lookup("ck_alpha")
                .map(|c| c.id.to_string())
                .as_deref(),
            Some("a"),
            "cached hit"
        );
        assert!(index.lookup("ck_gamma").is_none());
        assert!(index.lookup("ck_gamma").is_none(), "cached miss");
        assert!(index.lookup("").is_none());
        assert!(index.lookup(&"k".repeat(MAX_KEY_LEN + 1)).is_none());
    }

    #[test]
    fn guessed_keys_cannot_fill_the_cache_or_evict_real_keys() {
        let index = KeyIndex::build(&[consumer("a", "ck_alpha")]);
        assert!(index.lookup("ck_alpha").is_some());
        for i in 0..(3 * MISS_CAPACITY) {
            assert!(index.lookup(&format!("ck_guess_{i}")).is_none());
        }
        let (hits, misses) = index.cached();
        assert_eq!(hits, 1, "the real key is still cached");
        assert!(misses <= MISS_CAPACITY, "{misses} misses kept");
        assert_eq!(
            index
                .lookup("ck_alpha")
                .map(|c| c.id.to_string())
                .as_deref(),
            Some("a")
        );
        // The tag is keyed: the same key tags alike, others differ.
        assert_eq!(KEY_TAG.of("ck_alpha"), KEY_TAG.of("ck_alpha"));
        assert_ne!(KEY_TAG.of("ck_alpha"), KEY_TAG.of("ck_alphb"));
    }

    #[test]
    fn finds_consumers_by_id() {
        let consumers: Vec<_> = (0..50)
            .rev()
            .map(|i| consumer(&format!("c{i:02}"), &format!("ck_{i}")))
            .collect();
        let index = KeyIndex::build(&consumers);
        for i in 0..50 {
            let id = format!("c{i:02}");
            let found = index.by_id(&id).expect("found");
            assert_eq!(found.id.to_string(), id);
            assert_eq!(index.lookup(&format!("ck_{i}")), Some(found));
        }
        assert!(index.by_id("c50").is_none());
        assert!(index.by_id("").is_none());
    }

    #[test]
    fn uuid_ids_are_kept_in_16_bytes_and_found_as_text() {
        let uuid = "0b7c7f1e-4b9a-4c1d-9a35-2f6d0e8c1a77";
        let upper = "0B7C7F1E-4B9A-4C1D-9A35-2F6D0E8C1A77";
        let simple = "0b7c7f1e4b9a4c1d9a352f6d0e8c1a77";
        let index = KeyIndex::build(&[
            consumer(uuid, "ck_1"),
            consumer(upper, "ck_2"),
            consumer(simple, "ck_3"),
            consumer("zeta", "ck_4"),
        ]);
        assert!(matches!(ConsumerId::new(uuid), ConsumerId::Uuid(_)));
        for (id, key) in [
            (uuid, "ck_1"),
            (upper, "ck_2"),
            (simple, "ck_3"),
            ("zeta", "ck_4"),
        ] {
            let found = index.by_id(id).expect("found");
            assert_eq!(found.id.to_string(), id, "each id keeps its own text");
            assert_eq!(index.lookup(key), Some(found));
        }
        assert_eq!(
            ConsumerId::new(upper),
            ConsumerId::Text(upper.into()),
            "not canonical: kept as text"
        );
        assert!(
            index
                .by_id("0b7c7f1e-4b9a-4c1d-9a35-2f6d0e8c1a78")
                .is_none()
        );
    }

    #[test]
    fn a_new_index_forgets_revoked_keys_at_once() {
        let before = KeyIndex::build(&[consumer("a", "ck_alpha")]);
        assert!(before.lookup("ck_alpha").is_some());
        let after = KeyIndex::build(&[]);
        assert!(after.lookup("ck_alpha").is_none());
    }

    #[test]
    fn a_patched_index_is_the_index_of_the_patched_consumers() {
        let uuid = "0b7c7f1e-4b9a-4c1d-9a35-2f6d0e8c1a77";
        let before = KeyIndex::build(&[
            consumer("a", "ck_alpha"),
            consumer("b", "ck_beta"),
            consumer(uuid, "ck_uuid"),
        ]);
        assert!(before.lookup("ck_alpha").is_some());
        assert!(before.lookup("ck_new").is_none(), "a miss, cached");
        let changes = Changes {
            upserted: vec![
                ConsumerConfig {
                    rate_limit_tier: "gold".into(),
                    ..consumer("b", "ck_beta_rotated")
                },
                consumer("c", "ck_new"),
            ],
            removed: vec!["a".into(), uuid.into(), "never-there".into()],
        };
        let after = before.patched(&changes);
        assert_eq!(after.len(), 2);
        assert!(after.lookup("ck_alpha").is_none(), "a revoked key is gone");
        assert!(after.lookup("ck_uuid").is_none());
        assert!(
            after.lookup("ck_beta").is_none(),
            "a changed consumer's old key is gone"
        );
        let b = after.lookup("ck_beta_rotated").expect("found");
        assert_eq!(
            (b.id.to_string().as_str(), &*b.rate_limit_tier),
            ("b", "gold")
        );
        assert_eq!(
            after.lookup("ck_new"),
            after.by_id("c"),
            "no miss carried over"
        );
        assert!(after.by_id("a").is_none());
        let mut saved: Vec<_> = after.configs().collect();
        saved.sort_by(|x, y| x.id.cmp(&y.id));
        let mut expected = changes.upserted.clone();
        expected.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(saved, expected, "what it saves builds the same index");
        assert!(
            before.lookup("ck_alpha").is_some(),
            "the old index is untouched"
        );
    }

    #[test]
    fn patched_in_place_or_built_again_an_index_finds_the_same() {
        let mut index = KeyIndex::build(
            &(0..400)
                .map(|i| consumer(&format!("c{i:03}"), &format!("ck_{i}")))
                .collect::<Vec<_>>(),
        );
        // One consumer changed at a time, its key rotated: patched in
        // place until those taken out are a quarter of the list.
        let mut built_again = false;
        for round in 0..300 {
            let i = round % 400;
            let changes = Changes {
                upserted: vec![consumer(&format!("c{i:03}"), &format!("ck_{i}_r{round}"))],
                removed: vec![],
            };
            let gone_before = index.gone;
            index = index.patched(&changes);
            built_again |= index.gone < gone_before;
            assert_eq!(index.len(), 400);
            assert!(index.lookup(&format!("ck_{i}_r{round}")).is_some());
            assert!(index.lookup(&format!("ck_{i}")).is_none());
            assert_eq!(index.consumers.len() - index.gone, 400);
            assert!(
                index.gone <= index.consumers.len() / 4 + 64,
                "{} gone",
                index.gone
            );
        }
        assert!(built_again, "built again once a quarter was gone");
        for i in 0..400 {
            let id = format!("c{i:03}");
            assert_eq!(index.by_id(&id).expect("found").id.to_string(), id);
        }
        let mut ids: Vec<String> = index.configs().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 400, "each live consumer saved once");
        // A large change builds it again, with nothing taken out left over.
        let removed: Vec<String> = (0..200).map(|i| format!("c{i:03}")).collect();
        let index = index.patched(&Changes {
            upserted: vec![],
            removed,
        });
        assert_eq!(
            (index.len(), index.gone, index.consumers.len()),
            (200, 0, 200)
        );
        assert!(index.by_id("c000").is_none() && index.by_id("c399").is_some());
    }

    #[test]
    fn malformed_hashes_are_skipped() {
        let bad = ConsumerConfig {
            id: "x".into(),
            api_key_hash: "zz".into(),
            rate_limit_tier: "free".into(),
        };
        assert!(KeyIndex::build(&[bad]).is_empty());
    }
}
