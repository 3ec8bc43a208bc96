//! Password rules and argon2id hashing, run off the async workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{ApiError, Result};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 8;
/// The longest password accepted (hashing cost grows with length).
pub const MAX_LENGTH: usize = 1024;

/// Checks the length rules, naming `field` on failure.
pub fn validate(field: &'static str, password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(ApiError::invalid(
            field,
            format!("password must be at least {MIN_LENGTH} characters"),
        ));
    }
    if password.len() > MAX_LENGTH {
        return Err(ApiError::invalid(
            field,
            format!("password must be at most {MAX_LENGTH} bytes"),
        ));
    }
    Ok(())
}

/// An argon2id PHC string for `password`, with a fresh salt.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("argon2: {err}")))
    })
    .await
    .map_err(|err| ApiError::Internal(err.into()))?
}

/// Whether `password` matches the PHC string `hash` (constant-time inside
/// argon2). A malformed hash never matches.
pub async fn verify(password: String, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .map_err(|err| ApiError::Internal(err.into()))
}

/// A hash to verify against when the account does not exist, so a login for
/// an unknown email costs as much as one for a known email.
pub async fn decoy_hash() -> &'static str {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_init(|| async {
            hash("decoy password that never matches".to_owned())
                .await
                .unwrap_or_default()
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hash = hash("correct horse".to_owned()).await.expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".to_owned(), hash.clone())
                .await
                .expect("runs")
        );
        assert!(!verify("wrong horse".to_owned(), hash).await.expect("runs"));
        assert!(
            !verify("x".to_owned(), "not a hash".to_owned())
                .await
                .expect("runs")
        );
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate("password", "1234567").is_err());
        assert!(validate("password", "12345678").is_ok());
        assert!(validate("password", &"x".repeat(MAX_LENGTH + 1)).is_err());
    }
}
