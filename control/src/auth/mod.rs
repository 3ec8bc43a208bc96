//! Who is calling: tenant JWTs, password hashing, login throttling, and the
//! extractor that guards every `/api/tenants/{tenantId}/...` endpoint.

pub mod jwt;
pub mod passwords;
pub mod tenant;
pub mod throttle;

pub use jwt::JwtKeys;
pub use tenant::TenantAuth;
pub use throttle::Throttle;
