//! `kv`: a small node-local key-value store of the tenant's.

use super::{HostState, lock};
use crate::plugins::bindings::gatehouse::plugin::kv;

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        lock(&self.ctx.shared.kv).get(&key).cloned()
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        lock(&self.ctx.shared.kv).insert(key, value);
    }

    fn delete(&mut self, key: String) {
        lock(&self.ctx.shared.kv).remove(&key);
    }
}
