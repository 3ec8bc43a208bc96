//! Plugin upload validation: any bytes are accepted or refused with a
//! reason, never a panic (the control plane runs this on every upload).
#![no_main]

use gatehouse_protocol::plugin_check::check;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check(data);
});
