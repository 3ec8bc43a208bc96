//! `config`: the plugin's configuration on the route.

use super::HostState;
use crate::plugins::bindings::gatehouse::plugin::config;

impl config::Host for HostState {
    fn get_json(&mut self) -> String {
        if self.ctx.config_json.is_empty() {
            "{}".to_owned()
        } else {
            self.ctx.config_json.to_string()
        }
    }
}
