//! What a plugin may call, and the limits of its store: its route config, consumer lookup by key, node-local counters
//! and key-value (tenant-scoped: one node serves one tenant), and a memory
//! limiter that remembers when it refused growth (so the failure reads "out
//! of memory", not just "trap").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::ResourceLimiter;

use super::bindings::gatehouse::plugin::{config, consumers, counters, kv, log, types};
use crate::keys::KeyIndex;

/// State shared by every call of a node's plugins: counters and key-value.
#[derive(Debug, Default, Clone)]
pub struct SharedState {
    counters: Arc<Mutex<HashMap<String, i64>>>,
    kv: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    rates: Arc<Mutex<HashMap<(String, u64), Instant>>>,
}

/// One call's store data.
pub struct HostState {
    pub(super) limits: MemoryCap,
    plugin: String,
    config_json: String,
    keys: Option<Arc<KeyIndex>>,
    shared: SharedState,
}

impl HostState {
    pub fn new(
        plugin: String,
        config_json: String,
        keys: Option<Arc<KeyIndex>>,
        shared: SharedState,
        max_memory: usize,
    ) -> Self {
        Self {
            limits: MemoryCap {
                max: max_memory,
                refused: false,
            },
            plugin,
            config_json,
            keys,
            shared,
        }
    }
}

/// Caps linear memory; remembers a refusal.
pub struct MemoryCap {
    max: usize,
    pub(super) refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) {
        let message: String = message.chars().take(1024).collect();
        let plugin = self.plugin.as_str();
        match level {
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl config::Host for HostState {
    fn get_json(&mut self) -> String {
        self.config_json.clone()
    }
}

impl consumers::Host for HostState {
    fn by_key(&mut self, key: String) -> Option<consumers::Consumer> {
        let consumer = self.keys.as_ref()?.lookup(&key)?;
        Some(consumers::Consumer {
            id: consumer.id.clone(),
            rate_limit_tier: consumer.rate_limit_tier.clone(),
        })
    }
}

impl counters::Host for HostState {
    fn increment(&mut self, name: String, delta: i64) -> i64 {
        let mut counters = lock(&self.shared.counters);
        let value = counters.entry(name).or_insert(0);
        *value = value.saturating_add(delta);
        *value
    }

    fn check_rate(&mut self, key: String, per_minute: u64) -> counters::LimitDecision {
        // GCRA on this node: the theoretical arrival time advances by one
        // emission interval per allowed request; bursts up to the limit.
        let per_minute = per_minute.max(1);
        let interval =
            std::time::Duration::from_secs(60) / u32::try_from(per_minute).unwrap_or(u32::MAX);
        let burst = interval * u32::try_from(per_minute).unwrap_or(u32::MAX);
        let now = Instant::now();
        let mut rates = lock(&self.shared.rates);
        let tat = rates
            .get(&(key.clone(), per_minute))
            .copied()
            .unwrap_or(now)
            .max(now);
        let allow_at = tat.checked_sub(burst - interval).unwrap_or(now);
        if now < allow_at {
            let wait = allow_at - now;
            return counters::LimitDecision {
                allowed: false,
                limit: per_minute,
                remaining: 0,
                reset_seconds: (tat - now).as_secs().max(1),
                retry_after_seconds: wait.as_secs().max(1),
            };
        }
        let new_tat = tat + interval;
        rates.insert((key, per_minute), new_tat);
        let used = ((new_tat - now).as_nanos() / interval.as_nanos().max(1)) as u64;
        counters::LimitDecision {
            allowed: true,
            limit: per_minute,
            remaining: per_minute.saturating_sub(used),
            reset_seconds: (new_tat - now).as_secs(),
            retry_after_seconds: 0,
        }
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        lock(&self.shared.kv).get(&key).cloned()
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        lock(&self.shared.kv).insert(key, value);
    }

    fn delete(&mut self, key: String) {
        lock(&self.shared.kv).remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use counters::Host as _;

    fn state(shared: &SharedState) -> HostState {
        HostState::new("t".into(), "{}".into(), None, shared.clone(), 1 << 20)
    }

    #[test]
    fn rate_checks_allow_the_limit_then_refuse_without_consuming() {
        let shared = SharedState::default();
        let mut host = state(&shared);
        let allowed = (0..10)
            .filter(|_| host.check_rate("k".into(), 5).allowed)
            .count();
        assert_eq!(allowed, 5, "a burst up to the per-minute limit, no more");
        let refused = host.check_rate("k".into(), 5);
        assert!(!refused.allowed);
        assert!(refused.retry_after_seconds >= 1);
        assert_eq!(refused.remaining, 0);
        // Another key has its own budget, shared across calls of the node.
        assert!(state(&shared).check_rate("other".into(), 5).allowed);
    }

    #[test]
    fn counters_are_shared_across_calls() {
        let shared = SharedState::default();
        assert_eq!(state(&shared).increment("hits".into(), 2), 2);
        assert_eq!(state(&shared).increment("hits".into(), 3), 5);
    }
}
