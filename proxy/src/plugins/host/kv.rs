//! `kv`: the plugin's own key-value store on the node (see `store` for its
//! limits and expiry).

use std::time::{Duration, Instant};

use super::HostState;
use super::store::Refusal;
use crate::plugins::bindings::gatehouse::plugin::kv;

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.store().kv.get(&key, Instant::now()).cloned()
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        expires_in_seconds: Option<u32>,
    ) -> Result<(), kv::KvError> {
        let bytes = value.len();
        let ttl = expires_in_seconds.map(|s| Duration::from_secs(s.into()));
        self.store()
            .kv
            .insert(key, value, bytes, ttl, Instant::now())
            .map_err(|refusal| match refusal {
                Refusal::Full => kv::KvError::Full,
                Refusal::TooLarge => kv::KvError::TooLarge,
            })
    }

    fn delete(&mut self, key: String) -> bool {
        self.store().kv.remove(&key, Instant::now())
    }

    fn usage(&mut self) -> kv::KvUsage {
        let mut store = self.store();
        let (entries, bytes) = store.kv.usage(Instant::now());
        let limits = store.kv.limits();
        kv::KvUsage {
            entries: u32::try_from(entries).unwrap_or(u32::MAX),
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
            max_entries: u32::try_from(limits.max_entries).unwrap_or(u32::MAX),
            max_bytes: u64::try_from(limits.max_bytes).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::host::{SharedState, test_state};
    use kv::Host as _;

    #[test]
    fn each_plugin_has_its_own_store() {
        let shared = SharedState::default();
        let mut one = test_state(&shared);
        one.set("k".into(), b"one".to_vec(), None).expect("room");
        let mut other = HostState::new(one.ctx.clone(), "other".into(), false, 1 << 20);
        assert_eq!(other.get("k".into()), None, "another plugin's key");
        other
            .set("k".into(), b"other".to_vec(), None)
            .expect("room");
        assert_eq!(test_state(&shared).get("k".into()), Some(b"one".to_vec()));
        assert!(other.delete("k".into()));
        assert_eq!(test_state(&shared).usage().entries, 1);
    }

    #[test]
    fn a_full_store_answers_full() {
        let shared = SharedState::default();
        let mut state = test_state(&shared);
        let value = vec![7; 60 << 10];
        let mut stored = 0;
        let refusal = loop {
            match state.set(format!("k{stored}"), value.clone(), None) {
                Ok(()) => stored += 1,
                Err(err) => break err,
            }
        };
        assert_eq!(refusal, kv::KvError::Full);
        let usage = state.usage();
        assert_eq!(usage.entries, stored);
        assert!(usage.bytes <= usage.max_bytes && usage.max_bytes == 4 << 20);
        assert_eq!(
            state.set("big".into(), vec![0; (64 << 10) + 1], None),
            Err(kv::KvError::TooLarge)
        );
    }
}
