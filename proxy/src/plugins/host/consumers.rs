//! `consumers`: the tenant's consumers, by API key or by id.

use super::HostState;
use crate::keys::Consumer;
use crate::plugins::bindings::gatehouse::plugin::consumers;

fn plugin_view(consumer: &Consumer) -> consumers::Consumer {
    consumers::Consumer {
        id: consumer.id.to_string(),
        rate_limit_tier: consumer.rate_limit_tier.to_string(),
    }
}

impl consumers::Host for HostState {
    fn by_key(&mut self, key: String) -> Option<consumers::Consumer> {
        let consumer = self.ctx.keys.as_ref()?.lookup(&key)?;
        Some(plugin_view(&consumer))
    }

    fn by_id(&mut self, id: String) -> Option<consumers::Consumer> {
        let consumer = self.ctx.keys.as_ref()?.by_id(&id)?;
        Some(plugin_view(&consumer))
    }
}
