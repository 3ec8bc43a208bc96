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

/// The last page a paginated list serves: 200 pages of 50 is 10,000 rows,
/// the most a database is asked to skip (older rows are reached by
/// narrowing `from`/`to`, not by skipping millions).
pub const MAX_PAGE: i64 = 200;

/// A page number from a query string: 1 when absent, 400 outside 1 to
/// [`MAX_PAGE`].
pub fn page(page: Option<i64>) -> Result<i64> {
    match page {
        None => Ok(1),
        Some(p) if (1..=MAX_PAGE).contains(&p) => Ok(p),
        Some(_) => Err(ApiError::invalid(
            "page",
            format!("must be between 1 and {MAX_PAGE}; narrow from/to to reach older entries"),
        )),
    }
}
