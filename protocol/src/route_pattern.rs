//! Route path patterns: `/users/:id` (one segment), `/static/*` (the rest),
//! exact segments otherwise. Parsing checks the syntax once; `shape` is the
//! pattern with parameter names erased, so `/a/:x` and `/a/:y` are known to
//! be the same route.

use std::fmt;

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 2048;

/// One `/`-separated piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches this text exactly.
    Exact(String),
    /// `:name`: matches any one non-empty segment.
    Param(String),
    /// A final `*`: matches the rest of the path, possibly empty.
    Wildcard,
}

/// A parsed, valid route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    segments: Vec<Segment>,
    trailing_slash: bool,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("must start with /")]
    MissingLeadingSlash,
    #[error("must be at most {MAX_PATTERN_LEN} bytes")]
    TooLong,
    #[error("must not contain an empty segment (//)")]
    EmptySegment,
    #[error("must not contain ?, # or whitespace")]
    ForbiddenCharacter,
    #[error("`{0}` is not a parameter name (letters, digits and _, not starting with a digit)")]
    BadParamName(String),
    #[error("parameter `{0}` appears twice")]
    DuplicateParam(String),
    #[error("* may only be the whole last segment")]
    MisplacedWildcard,
    #[error("segments must be `text`, `:name` or a final `*`; `{0}` mixes them")]
    MixedSegment(String),
}

impl RoutePattern {
    /// Parses and validates `pattern`.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        let rest = pattern
            .strip_prefix('/')
            .ok_or(PatternError::MissingLeadingSlash)?;
        if pattern
            .chars()
            .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
        {
            return Err(PatternError::ForbiddenCharacter);
        }
        if rest.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
                trailing_slash: false,
            });
        }
        let trailing_slash = rest.ends_with('/');
        let body = rest.strip_suffix('/').unwrap_or(rest);
        let pieces: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(pieces.len());
        for (index, piece) in pieces.iter().enumerate() {
            let last = index + 1 == pieces.len();
            segments.push(Self::segment(piece, last && !trailing_slash)?);
        }
        let mut names: Vec<&str> = Vec::new();
        for segment in &segments {
            if let Segment::Param(name) = segment {
                if names.contains(&name.as_str()) {
                    return Err(PatternError::DuplicateParam(name.clone()));
                }
                names.push(name);
            }
        }
        Ok(Self {
            segments,
            trailing_slash,
        })
    }

    fn segment(piece: &str, may_be_wildcard: bool) -> Result<Segment, PatternError> {
        if piece.is_empty() {
            return Err(PatternError::EmptySegment);
        }
        if piece == "*" {
            return if may_be_wildcard {
                Ok(Segment::Wildcard)
            } else {
                Err(PatternError::MisplacedWildcard)
            };
        }
        if piece.contains('*') {
            return Err(PatternError::MixedSegment(piece.to_owned()));
        }
        if let Some(name) = piece.strip_prefix(':') {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if valid {
                Ok(Segment::Param(name.to_owned()))
            } else {
                Err(PatternError::BadParamName(name.to_owned()))
            };
        }
        if piece.contains(':') {
            return Err(PatternError::MixedSegment(piece.to_owned()));
        }
        Ok(Segment::Exact(piece.to_owned()))
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the pattern ends with `/` (after its last segment).
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The pattern with parameter names erased: two patterns with the same
    /// shape match exactly the same paths.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Exact(text) => out.push_str(text),
                Segment::Param(_) => out.push(':'),
                Segment::Wildcard => out.push('*'),
            }
        }
        if self.trailing_slash || self.segments.is_empty() {
            out.push('/');
        }
        out
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Exact(text) => write!(f, "/{text}")?,
                Segment::Param(name) => write!(f, "/:{name}")?,
                Segment::Wildcard => f.write_str("/*")?,
            }
        }
        if self.trailing_slash || self.segments.is_empty() {
            f.write_str("/")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_param_and_wildcard_segments() {
        let p = RoutePattern::parse("/users/:id/files/*").expect("valid");
        assert_eq!(
            p.segments(),
            &[
                Segment::Exact("users".into()),
                Segment::Param("id".into()),
                Segment::Exact("files".into()),
                Segment::Wildcard,
            ]
        );
        assert_eq!(p.to_string(), "/users/:id/files/*");
        assert_eq!(p.shape(), "/users/:/files/*");
        assert_eq!(RoutePattern::parse("/").expect("root").shape(), "/");
        assert!(
            RoutePattern::parse("/a/")
                .expect("slash")
                .has_trailing_slash()
        );
    }

    #[test]
    fn same_shape_for_renamed_params() {
        let a = RoutePattern::parse("/a/:x").expect("valid");
        let b = RoutePattern::parse("/a/:y").expect("valid");
        assert_eq!(a.shape(), b.shape());
        assert_ne!(
            a.shape(),
            RoutePattern::parse("/a/x").expect("valid").shape()
        );
    }

    #[test]
    fn refuses_malformed_patterns() {
        use PatternError::*;
        let cases = [
            ("users", MissingLeadingSlash),
            ("", MissingLeadingSlash),
            ("/a//b", EmptySegment),
            ("/a?b=1", ForbiddenCharacter),
            ("/a b", ForbiddenCharacter),
            ("/:1abc", BadParamName("1abc".into())),
            ("/:", BadParamName(String::new())),
            ("/:a/:a", DuplicateParam("a".into())),
            ("/*/a", MisplacedWildcard),
            ("/*/", MisplacedWildcard),
            ("/a*", MixedSegment("a*".into())),
            ("/a:b", MixedSegment("a:b".into())),
        ];
        for (pattern, expected) in cases {
            assert_eq!(RoutePattern::parse(pattern), Err(expected), "{pattern:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATTERN_LEN));
        assert_eq!(RoutePattern::parse(&long), Err(TooLong));
    }
}
