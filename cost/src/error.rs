//! The errors of the cost model, one variant per stage that can refuse a configuration.

/// Why the cost model refused a configuration, named by the stage that failed. The messages
/// name the flag or the price file key to change.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// Combining the inputs set on the command line: two that exclude each other, or one that
    /// needs another ([`CostConfig::new`](crate::CostConfig::new)).
    #[error("{0}")]
    Flags(String),
    /// Reading a price file's text ([`CostConfig::with_price_file`](crate::CostConfig::with_price_file)).
    #[error("price file {path}: {error}")]
    PriceFile {
        /// The price file's path, as given.
        path: String,
        /// What is wrong with it.
        error: PriceFileError,
    },
    /// Checking the inputs and prices: a value outside its range, or inputs that do not fit
    /// together ([`validate`](crate::validate)).
    #[error("{0}")]
    Invalid(String),
    /// Writing the report as JSON ([`render_json`](crate::render_json)).
    #[error("writing the report as JSON")]
    Json(#[from] serde_json::Error),
}

/// What is wrong with a price file ([`parse_price_file`](crate::parse_price_file)).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceFileError {
    /// A `[table]` header: the file is flat.
    #[error("line {line}: a price file has no tables, only `key = number` lines")]
    Table {
        /// Line number, from 1.
        line: usize,
    },
    /// A line without `=`.
    #[error("line {line}: expected `key = number`")]
    NotKeyValue {
        /// Line number, from 1.
        line: usize,
    },
    /// A key that is not a TOML bare key.
    #[error("line {line}: {key:?} is not a bare key")]
    NotBareKey {
        /// Line number, from 1.
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A value that is not a finite number.
    #[error("line {line}: {key} = {value} is not a finite number")]
    NotANumber {
        /// Line number, from 1.
        line: usize,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A key set on two lines.
    #[error("line {line}: {key} is set twice")]
    SetTwice {
        /// Line number of the second time, from 1.
        line: usize,
        /// The key.
        key: String,
    },
    /// A key that names no price (the message lists the keys there are).
    #[error("{0}")]
    UnknownKey(String),
}
