//! Tenant tokens: HS256 JWTs whose `sub` is the tenant id and `gen` the
//! tenant's token generation when it was issued (a password reset bumps the
//! generation, and the guard refuses tokens of an older one).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a token lives unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The claims Gatehouse signs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant id.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    /// The tenant's token generation at issue.
    #[serde(default, rename = "gen")]
    pub generation: i64,
}

/// Signs and verifies tenant tokens with one shared secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Keys from a secret; tokens live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A fresh token for `tenant_id`, of its token generation `generation`.
    pub fn issue(
        &self,
        tenant_id: &str,
        generation: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: tenant_id.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The claims of a token that is well-formed, HS256-signed with our
    /// secret and not expired; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_carry_the_tenant() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", DEFAULT_TTL);
        let token = keys.issue("tenant-1", 3).expect("signs");
        let claims = keys.verify(&token).expect("verifies");
        assert_eq!((claims.sub.as_str(), claims.generation), ("tenant-1", 3));
    }

    #[test]
    fn other_secrets_and_expired_tokens_are_refused() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", DEFAULT_TTL);
        let other = JwtKeys::new(b"another secret, just as long!!!!", DEFAULT_TTL);
        let token = other.issue("tenant-1", 0).expect("signs");
        assert!(keys.verify(&token).is_none());

        let expired = Claims {
            sub: "t".into(),
            iat: 1,
            exp: 2,
            generation: 0,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &keys.encoding)
            .expect("signs");
        assert!(keys.verify(&token).is_none());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", DEFAULT_TTL);
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "t".into(),
            iat: now,
            exp: now + 60,
            generation: 0,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &keys.encoding)
            .expect("signs");
        assert!(keys.verify(&token).is_none());
        assert!(keys.verify("not.a.jwt").is_none());
    }
}
