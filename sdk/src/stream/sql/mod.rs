//! The SQL front end: the ksqlDB grammar subset ([`parser`]) planned into the same [`Plan`] the
//! Rust DSL builds (the planner). Every error names the line and column and what was expected.

pub mod parser;
mod planner;

use super::catalog::Catalog;
use super::plan::Plan;

/// A query that does not parse or cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SqlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What was expected, and what was found.
    pub message: String,
}

impl SqlError {
    pub(crate) fn at(sql: &str, offset: usize, message: impl Into<String>) -> Self {
        // An offset inside a character counts as that character's start: never a panic.
        let mut offset = offset.min(sql.len());
        while !sql.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &sql[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        SqlError { line, column, message: message.into() }
    }

    /// The error with the offending line of `sql` and a caret under the column, for terminals.
    pub fn render(&self, sql: &str) -> String {
        let sql = sql.strip_prefix(BOM).unwrap_or(sql);
        let text = sql.lines().nth(self.line - 1).unwrap_or("");
        // Tabs stay tabs under the line, so that the caret lands under the column.
        let pad: String = text.chars().take(self.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        format!("{self}\n  | {text}\n  | {pad}^")
    }
}

/// The byte-order mark some editors put at the start of a UTF-8 file.
const BOM: char = '\u{feff}';

/// Parses and plans a `CREATE STREAM | TABLE ... AS SELECT` against the streams of `catalog`.
pub fn plan(sql: &str, catalog: &Catalog) -> Result<Plan, SqlError> {
    // A file saved with a byte-order mark: positions count from after it.
    let sql = sql.strip_prefix(BOM).unwrap_or(sql);
    let statement = parser::parse(sql).map_err(|failure| {
        SqlError::at(sql, failure.at, format!("expected {}, found {}", failure.expected, failure.found))
    })?;
    planner::plan(&statement, catalog).map_err(|(at, message)| SqlError::at(sql, at, message))
}

#[cfg(test)]
mod tests;
