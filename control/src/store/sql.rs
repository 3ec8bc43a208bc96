//! A query builder for SQL whose shape depends on the request (optional
//! filters). sqlx's `QueryBuilder` writes `?` for the Any
//! driver whatever the database, which PostgreSQL rejects; this one writes
//! each dialect's own placeholders: `$1`, `$2`, ... on PostgreSQL, `?` on
//! SQLite (whose numbered parameters are named ones, resolved by a search
//! that makes a 28,000-parameter insert several times slower).

use std::fmt::Write;

use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::QueryAs;
use sqlx::{Arguments, AssertSqlSafe, Encode, FromRow, Type};

use super::Dialect;

/// SQL text plus its bound parameters, in order.
pub struct Sql {
    dialect: Dialect,
    text: String,
    args: AnyArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Sql {
    /// Starts with a fragment of SQL.
    pub fn new(dialect: Dialect, text: &str) -> Self {
        Self {
            dialect,
            text: text.to_owned(),
            args: AnyArguments::default(),
            error: None,
        }
    }

    /// Appends SQL text (never user input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        if let Err(err) = self.args.add(value) {
            self.error.get_or_insert(err);
        }
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            // Writing to a String cannot fail.
            Dialect::Postgres => {
                let _ = write!(self.text, "${}", self.args.len());
            }
        }
        self
    }

    /// A query returning rows of `O`.
    pub fn query_as<O>(self) -> Result<QueryAs<'static, Any, O, AnyArguments>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, AnyRow>,
    {
        match self.error {
            Some(err) => Err(sqlx::Error::Encode(err)),
            None => Ok(sqlx::query_as_with(AssertSqlSafe(self.text), self.args)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut sql = Sql::new(Dialect::Postgres, "SELECT * FROM t WHERE a = ");
        sql.bind(1_i64).push(" AND b = ").bind("x".to_owned());
        assert_eq!(sql.text, "SELECT * FROM t WHERE a = $1 AND b = $2");
        let mut sql = Sql::new(Dialect::Sqlite, "SELECT * FROM t WHERE a = ");
        sql.bind(1_i64).push(" AND b = ").bind("x".to_owned());
        assert_eq!(sql.text, "SELECT * FROM t WHERE a = ? AND b = ?");
        assert_eq!(sql.args.len(), 2);
    }
}
