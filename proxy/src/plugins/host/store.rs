//! Each plugin's own state on the node: its key-value entries and its
//! counters, in a namespace of its own (by plugin name), within fixed
//! limits and with optional expiry. A store that is full refuses the write
//! and says so; it never evicts what a plugin stored. Expired entries are
//! dropped at the plugin's next use of its store (an ordered index of
//! expiries finds them), so they neither answer nor count against the
//! limits.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// What one plugin may keep in one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    /// Keys and values together, in bytes.
    pub max_bytes: usize,
    pub max_key: usize,
    pub max_value: usize,
}

/// The limits of a plugin's key-value store (as `wit/plugin.wit` states).
pub const KV_LIMITS: Limits = Limits {
    max_entries: 10_000,
    max_bytes: 4 << 20,
    max_key: 256,
    max_value: 64 << 10,
};

/// The limits of a plugin's counters (as `wit/plugin.wit` states).
pub const COUNTER_LIMITS: Limits = Limits {
    max_entries: 10_000,
    max_bytes: usize::MAX,
    max_key: 256,
    max_value: 8,
};

/// Why a write was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The write would take the store past its entries or bytes.
    Full,
    /// The key or the value is longer than the limits allow.
    TooLarge,
}

struct Entry<V> {
    value: V,
    /// Key and value bytes, as counted against `max_bytes`.
    bytes: usize,
    expires: Option<Instant>,
}

/// A map within [`Limits`], whose entries may expire.
pub struct Bounded<V> {
    limits: Limits,
    entries: HashMap<String, Entry<V>>,
    /// When each expiring entry goes, soonest first.
    expiries: BTreeSet<(Instant, String)>,
    bytes: usize,
}

impl<V> Bounded<V> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
            expiries: BTreeSet::new(),
            bytes: 0,
        }
    }

    /// Drops the entries whose time has come by `now`.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiries.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.expiries.pop_first()
                && let Some(gone) = self.entries.remove(&key)
            {
                self.bytes -= gone.bytes;
            }
        }
    }

    /// The live value of `key`.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<&V> {
        self.expire(now);
        self.entries.get(key).map(|entry| &entry.value)
    }

    /// Stores `value` (of `value_bytes`) under `key`, replacing what was
    /// there, to expire `ttl` after `now` when given.
    pub fn insert(
        &mut self,
        key: String,
        value: V,
        value_bytes: usize,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<(), Refusal> {
        self.expire(now);
        self.put(key, value, value_bytes, ttl, now)
    }

    /// [`Bounded::insert`] on a store already swept at `now`.
    fn put(
        &mut self,
        key: String,
        value: V,
        value_bytes: usize,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<(), Refusal> {
        if key.len() > self.limits.max_key || value_bytes > self.limits.max_value {
            return Err(Refusal::TooLarge);
        }
        let bytes = key.len() + value_bytes;
        let existing = self.entries.get(&key).map(|old| old.bytes);
        let replaced = existing.unwrap_or(0);
        if (existing.is_none() && self.entries.len() >= self.limits.max_entries)
            || self.bytes - replaced + bytes > self.limits.max_bytes
        {
            return Err(Refusal::Full);
        }
        self.forget(&key);
        let expires = ttl.and_then(|ttl| now.checked_add(ttl));
        if let Some(at) = expires {
            self.expiries.insert((at, key.clone()));
        }
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                value,
                bytes,
                expires,
            },
        );
        Ok(())
    }

    /// Removes `key`; whether there was a live entry.
    pub fn remove(&mut self, key: &str, now: Instant) -> bool {
        self.expire(now);
        self.forget(key)
    }

    /// Removes `key`, live or not; whether it was there.
    fn forget(&mut self, key: &str) -> bool {
        let Some(gone) = self.entries.remove(key) else {
            return false;
        };
        self.bytes -= gone.bytes;
        if let Some(at) = gone.expires {
            self.expiries.remove(&(at, key.to_owned()));
        }
        true
    }

    /// Live entries and their bytes.
    pub fn usage(&mut self, now: Instant) -> (usize, usize) {
        self.expire(now);
        (self.entries.len(), self.bytes)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

impl Bounded<i64> {
    /// Adds `delta` to the counter `name` (a new one starts at 0, expiring
    /// `ttl` after `now` when given; an existing one keeps its expiry).
    pub fn add(
        &mut self,
        name: &str,
        delta: i64,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<i64, Refusal> {
        self.expire(now);
        if let Some(entry) = self.entries.get_mut(name) {
            entry.value = entry.value.saturating_add(delta);
            return Ok(entry.value);
        }
        self.put(name.to_owned(), delta, size_of::<i64>(), ttl, now)?;
        Ok(delta)
    }
}

/// One plugin's state on the node.
pub struct PluginStore {
    pub kv: Bounded<Vec<u8>>,
    pub counters: Bounded<i64>,
    /// When the node last logged that a 0.1.0 component's write was
    /// dropped (at most once a minute: the plugin cannot see it).
    pub dropped_logged: Option<Instant>,
}

impl std::fmt::Debug for PluginStore {
    // What plugins store is theirs (it may be secret): only sizes print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginStore")
            .field("kv_entries", &self.kv.entries.len())
            .field("kv_bytes", &self.kv.bytes)
            .field("counters", &self.counters.entries.len())
            .finish()
    }
}

impl Default for PluginStore {
    fn default() -> Self {
        Self {
            kv: Bounded::new(KV_LIMITS),
            counters: Bounded::new(COUNTER_LIMITS),
            dropped_logged: None,
        }
    }
}

impl PluginStore {
    /// Whether to log a dropped write now (and remember that it was).
    pub fn log_dropped_write(&mut self, now: Instant) -> bool {
        let due = self
            .dropped_logged
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
        if due {
            self.dropped_logged = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        max_entries: 3,
        max_bytes: 40,
        max_key: 8,
        max_value: 16,
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_full_store_refuses_and_keeps_what_it_has() {
        let now = Instant::now();
        let mut kv = Bounded::new(SMALL);
        for key in ["a", "b", "c"] {
            kv.insert(key.into(), vec![0; 4], 4, None, now)
                .expect("room");
        }
        assert_eq!(
            kv.insert("d".into(), vec![0; 1], 1, None, now),
            Err(Refusal::Full),
            "a fourth entry"
        );
        // Replacing an entry needs no new slot.
        kv.insert("a".into(), vec![1; 4], 4, None, now)
            .expect("replace");
        assert_eq!(kv.usage(now), (3, 15));
        // Bytes (keys and values): three of 1 + 16 would be 51, past 40.
        kv.insert("a".into(), vec![1; 16], 16, None, now)
            .expect("27 bytes");
        kv.insert("b".into(), vec![1; 16], 16, None, now)
            .expect("39 bytes");
        assert_eq!(
            kv.insert("c".into(), vec![1; 16], 16, None, now),
            Err(Refusal::Full)
        );
        assert_eq!(kv.get("c", now), Some(&vec![0; 4]), "unchanged");
        assert_eq!(kv.usage(now), (3, 39));
        assert!(kv.remove("c", now));
        assert!(!kv.remove("c", now));
        kv.insert("d".into(), vec![0; 1], 1, None, now)
            .expect("room again");
    }

    #[test]
    fn oversized_keys_and_values_are_refused() {
        let now = Instant::now();
        let mut kv = Bounded::new(SMALL);
        assert_eq!(
            kv.insert("123456789".into(), vec![], 0, None, now),
            Err(Refusal::TooLarge)
        );
        assert_eq!(
            kv.insert("k".into(), vec![0; 17], 17, None, now),
            Err(Refusal::TooLarge)
        );
        assert_eq!(kv.usage(now), (0, 0));
    }

    #[test]
    fn entries_expire_and_free_their_room() {
        let now = Instant::now();
        let mut kv = Bounded::new(SMALL);
        kv.insert("a".into(), vec![0; 4], 4, Some(secs(1)), now)
            .expect("a");
        kv.insert("b".into(), vec![0; 4], 4, Some(secs(5)), now)
            .expect("b");
        kv.insert("c".into(), vec![0; 4], 4, None, now).expect("c");
        assert_eq!(
            kv.get("a", now + secs(1) - Duration::from_millis(1))
                .map(Vec::len),
            Some(4)
        );
        assert_eq!(kv.get("a", now + secs(1)), None, "gone at its time");
        assert_eq!(kv.usage(now + secs(1)), (2, 10));
        kv.insert("d".into(), vec![], 0, None, now + secs(1))
            .expect("the expired entry's slot");
        // Replacing an expiring entry without a ttl keeps it for good.
        kv.insert("b".into(), vec![1], 1, None, now + secs(2))
            .expect("b again");
        assert_eq!(kv.get("b", now + secs(60)), Some(&vec![1]));
    }

    #[test]
    fn counters_add_saturate_and_keep_their_first_expiry() {
        let now = Instant::now();
        let mut counters = Bounded::new(COUNTER_LIMITS);
        assert_eq!(counters.add("hits", 2, Some(secs(10)), now), Ok(2));
        assert_eq!(
            counters.add("hits", 3, Some(secs(100)), now + secs(5)),
            Ok(5)
        );
        assert_eq!(
            counters.add("hits", 1, None, now + secs(10)),
            Ok(1),
            "a new window"
        );
        assert_eq!(counters.add("max", i64::MAX, None, now), Ok(i64::MAX));
        assert_eq!(counters.add("max", 1, None, now), Ok(i64::MAX));
        assert_eq!(
            counters.add(&"n".repeat(257), 1, None, now),
            Err(Refusal::TooLarge)
        );
    }

    #[test]
    fn counters_past_the_cap_are_refused_until_some_expire() {
        let now = Instant::now();
        let mut counters = Bounded::new(Limits {
            max_entries: 2,
            ..COUNTER_LIMITS
        });
        counters.add("a", 1, Some(secs(1)), now).expect("a");
        counters.add("b", 1, None, now).expect("b");
        assert_eq!(counters.add("c", 1, None, now), Err(Refusal::Full));
        assert_eq!(
            counters.add("b", 1, None, now),
            Ok(2),
            "existing ones count on"
        );
        assert_eq!(counters.add("c", 1, None, now + secs(1)), Ok(1));
    }

    #[test]
    fn dropped_writes_are_logged_once_a_minute() {
        let now = Instant::now();
        let mut store = PluginStore::default();
        assert!(store.log_dropped_write(now));
        assert!(!store.log_dropped_write(now + secs(59)));
        assert!(store.log_dropped_write(now + secs(60)));
    }
}
