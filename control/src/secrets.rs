//! Random secrets shown once and stored as SHA-256: gateway keys (`gk_`),
//! consumer keys (`ck_`) and password-reset tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use gatehouse_protocol::key_prefix::{CONSUMER_KEY_PREFIX, GATEWAY_KEY_PREFIX};

/// A freshly made secret: the plaintext (show it once) and what to store.
#[derive(Debug)]
pub struct NewSecret {
    pub plaintext: String,
    /// Lowercase hex SHA-256 of the plaintext.
    pub hash: String,
    /// The first characters, enough for a person to recognise the key.
    pub display_prefix: String,
}

/// 256 random bits, URL-safe, behind `prefix`.
pub fn generate(prefix: &str) -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let plaintext = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let display_prefix = plaintext.chars().take(prefix.len() + 6).collect();
    NewSecret {
        hash: sha256_hex(&plaintext),
        plaintext,
        display_prefix,
    }
}

/// Lowercase hex SHA-256 of `data` (a key, a token, a component).
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    let digest = Sha256::digest(data.as_ref());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Compares two secrets (or their hashes) in time independent of where they
/// differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let a = generate(CONSUMER_KEY_PREFIX);
        let b = generate(CONSUMER_KEY_PREFIX);
        assert!(a.plaintext.starts_with("ck_"));
        assert!(a.plaintext.len() >= 3 + 43, "256 bits of base64");
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.hash, sha256_hex(&a.plaintext));
        assert_eq!(a.hash.len(), 64);
        assert!(a.plaintext.starts_with(&a.display_prefix));
        assert_eq!(a.display_prefix.len(), 9);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
