//! The SQL port.

use serde::de::DeserializeOwned;

/// A positional SQL parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One result row, column name → JSON value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed the statement.
    #[error("database error: {0}")]
    Database(String),
    /// A row did not have the shape the repository expects.
    #[error("unexpected row shape: {0}")]
    Decode(String),
}

/// A SQL database: D1 in the Worker, SQLite in tests.
///
/// No `Send` bound: the Worker's futures are single-threaded.
#[allow(async_fn_in_trait)]
pub trait SqlDatabase {
    /// Runs a statement, returning the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError>;
    /// Runs a query, returning its rows.
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError>;
}

pub(crate) fn decode<T: DeserializeOwned>(row: Row) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::Object(row))
        .map_err(|e| StoreError::Decode(e.to_string()))
}

pub(crate) async fn query_as<T: DeserializeOwned>(
    db: &impl SqlDatabase,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<T>, StoreError> {
    db.query(sql, params)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}
