//! PostgreSQL array literals (`{"a","b",NULL}`): a column of values handed
//! to the database as one text parameter, which the statement casts
//! (`$2::text[]`) and unnests. The `Any` driver binds no arrays, and
//! PostgreSQL reads a literal several times faster than the same rows as
//! JSON.

use std::fmt::{Display, Write};

/// An array literal being written, element by element.
#[derive(Debug)]
pub struct ArrayLiteral {
    text: String,
}

impl ArrayLiteral {
    /// An empty literal with room for `elements` of about `element_len`
    /// bytes each.
    pub fn with_capacity(elements: usize, element_len: usize) -> Self {
        let mut text = String::with_capacity(2 + elements * (element_len + 3));
        text.push('{');
        Self { text }
    }

    fn separate(&mut self) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
    }

    /// Appends a text element, or NULL; quotes and backslashes are escaped.
    /// (PostgreSQL text cannot hold a NUL character: a value with one fails
    /// the statement.)
    pub fn push_text(&mut self, value: Option<&str>) {
        self.separate();
        let Some(value) = value else {
            self.text.push_str("NULL");
            return;
        };
        self.text.push('"');
        let mut rest = value;
        while let Some(at) = rest.find(['"', '\\']) {
            self.text.push_str(&rest[..at]);
            self.text.push('\\');
            self.text.push(char::from(rest.as_bytes()[at]));
            rest = &rest[at + 1..];
        }
        self.text.push_str(rest);
        self.text.push('"');
    }

    /// Appends a number (an integer, or a float: Rust writes NaN and
    /// infinities as `NaN` and `inf`, which PostgreSQL reads).
    pub fn push_number(&mut self, value: impl Display) {
        self.separate();
        let _ = write!(self.text, "{value}");
    }

    /// The literal.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_quoted_escaped_and_separated() {
        let mut texts = ArrayLiteral::with_capacity(4, 8);
        for value in [
            Some("plain"),
            None,
            Some(r#"a "quoted" \path\ {x,y}"#),
            Some("NULL"),
            Some(""),
        ] {
            texts.push_text(value);
        }
        assert_eq!(
            texts.finish(),
            r#"{"plain",NULL,"a \"quoted\" \\path\\ {x,y}","NULL",""}"#
        );
        let mut numbers = ArrayLiteral::with_capacity(3, 4);
        numbers.push_number(-7_i64);
        numbers.push_number(1.25_f64);
        numbers.push_number(f64::INFINITY);
        assert_eq!(numbers.finish(), "{-7,1.25,inf}");
        assert_eq!(ArrayLiteral::with_capacity(0, 0).finish(), "{}");
    }
}
