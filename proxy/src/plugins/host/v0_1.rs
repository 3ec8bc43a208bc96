//! The host interfaces of `gatehouse:plugin@0.1.0` (`wit/0.1.0/`), for
//! components built against that release: each call is the 0.2.0 one.
//! What 0.1.0 cannot say, it does not hear: a `kv.set` the plugin's store
//! refuses is dropped, and an `increment` of a new counter it refuses
//! answers `delta` and keeps nothing (failing open, as a counter that was
//! just made would answer); the node logs such drops, once a minute per
//! plugin.

use std::time::Instant;

use super::HostState;
use crate::plugins::bindings as current;
use crate::plugins::bindings_v0_1::gatehouse::plugin::{
    config, consumers, counters, kv, log, types,
};

impl HostState {
    /// Logs that the plugin's store dropped a 0.1.0 write, unless it was
    /// said less than a minute ago.
    fn dropped(&mut self, what: &str) {
        if self.store().log_dropped_write(Instant::now()) {
            tracing::warn!(
                plugin = self.owner(),
                "a {what} of this 0.1.0 plugin was dropped: its store is at its limits \
                 (0.2.0 components are told; see docs/plugins.md)"
            );
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) {
        use current::gatehouse::plugin::log::{Host, Level};
        let level = match level {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        Host::write(self, level, message);
    }
}

impl config::Host for HostState {
    fn get_json(&mut self) -> String {
        current::gatehouse::plugin::config::Host::get_json(self)
    }
}

fn consumer(found: current::gatehouse::plugin::consumers::Consumer) -> consumers::Consumer {
    consumers::Consumer {
        id: found.id,
        rate_limit_tier: found.rate_limit_tier,
    }
}

impl consumers::Host for HostState {
    fn by_key(&mut self, key: String) -> Option<consumers::Consumer> {
        current::gatehouse::plugin::consumers::Host::by_key(self, key).map(consumer)
    }

    fn by_id(&mut self, id: String) -> Option<consumers::Consumer> {
        current::gatehouse::plugin::consumers::Host::by_id(self, id).map(consumer)
    }
}

impl counters::Host for HostState {
    fn increment(&mut self, name: String, delta: i64) -> i64 {
        match current::gatehouse::plugin::counters::Host::increment(self, name, delta, None) {
            Ok(value) => value,
            Err(_) => {
                self.dropped("counter");
                delta
            }
        }
    }

    async fn check_rate(
        &mut self,
        key: String,
        per_minute: u64,
    ) -> wasmtime::Result<counters::LimitDecision> {
        let decision =
            current::gatehouse::plugin::counters::Host::check_rate(self, key, per_minute).await?;
        Ok(counters::LimitDecision {
            allowed: decision.allowed,
            limit: decision.limit,
            remaining: decision.remaining,
            reset_seconds: decision.reset_seconds,
            retry_after_seconds: decision.retry_after_seconds,
        })
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        current::gatehouse::plugin::kv::Host::get(self, key)
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        if current::gatehouse::plugin::kv::Host::set(self, key, value, None).is_err() {
            self.dropped("kv.set");
        }
    }

    fn delete(&mut self, key: String) {
        current::gatehouse::plugin::kv::Host::delete(self, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::host::{SharedState, test_state};

    #[test]
    fn a_0_1_plugin_shares_its_store_with_its_0_2_self() {
        let shared = SharedState::default();
        let mut old = test_state(&shared);
        kv::Host::set(&mut old, "k".into(), b"v".to_vec());
        assert_eq!(counters::Host::increment(&mut old, "n".into(), 2), 2);
        let mut new = test_state(&shared);
        assert_eq!(
            current::gatehouse::plugin::kv::Host::get(&mut new, "k".into()),
            Some(b"v".to_vec())
        );
        assert_eq!(
            current::gatehouse::plugin::counters::Host::get(&mut new, "n".into()),
            Some(2)
        );
    }

    #[test]
    fn writes_past_the_limits_are_dropped_and_counters_fail_open() {
        let shared = SharedState::default();
        let mut old = test_state(&shared);
        kv::Host::set(&mut old, "k".repeat(300), b"v".to_vec());
        assert_eq!(kv::Host::get(&mut old, "k".repeat(300)), None);
        for n in 0..10_000 {
            counters::Host::increment(&mut old, format!("c{n}"), 1);
        }
        assert_eq!(counters::Host::increment(&mut old, "new".into(), 5), 5);
        assert_eq!(
            counters::Host::increment(&mut old, "new".into(), 5),
            5,
            "kept nothing"
        );
        assert_eq!(counters::Host::increment(&mut old, "c1".into(), 1), 2);
    }
}
