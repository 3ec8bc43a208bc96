//! How a key says what it is and where it travels: the control plane
//! issues keys with these prefixes, and a node recognises them by the same
//! ones (a gateway key on its command line, a consumer key it must not
//! forward); both read `Authorization: Bearer` the same way.

/// Prefix of gateway keys.
pub const GATEWAY_KEY_PREFIX: &str = "gk_";
/// Prefix of consumer API keys.
pub const CONSUMER_KEY_PREFIX: &str = "ck_";

/// The token of an `Authorization` header value in the bearer scheme: the
/// scheme in any case, then any run of spaces or tabs, then the token
/// (trimmed, not empty). `None` for any other scheme.
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches([' ', '\t']))
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_in_any_scheme_case_and_spacing() {
        for value in [
            "Bearer ck_a",
            "bearer ck_a",
            "BEARER ck_a",
            "bEaReR   ck_a  ",
            "  Bearer\tck_a",
        ] {
            assert_eq!(bearer_token(value), Some("ck_a"), "{value:?}");
        }
        for value in ["Basic ck_a", "Bearer", "Bearer   ", "Bearerck_a", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
