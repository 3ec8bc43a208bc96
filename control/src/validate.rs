//! Validation rules shared by several endpoints.

use crate::error::{ApiError, Result};

/// The longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A trimmed, non-empty display name of bounded length.
pub fn name(field: &'static str, raw: &str) -> Result<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A page number from a query string: 1 when absent, 400 when below 1 or
/// absurdly large.
pub fn page(page: Option<i64>) -> Result<i64> {
    match page {
        None => Ok(1),
        Some(p) if (1..=1_000_000).contains(&p) => Ok(p),
        Some(_) => Err(ApiError::invalid("page", "must be between 1 and 1000000")),
    }
}
