//! Route-pattern parsing: any text either parses or is refused with an
//! error, never a panic; a parsed pattern's shape and segments are usable
//! and parsing the same text again gives the same pattern.
#![no_main]

use gatehouse_protocol::RoutePattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pattern) = RoutePattern::parse(text) {
        let _ = pattern.shape();
        let _ = pattern.has_trailing_slash();
        assert_eq!(
            pattern.segments(),
            RoutePattern::parse(text).expect("parses again").segments()
        );
    }
});
