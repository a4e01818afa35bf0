//! The storage port over SQLite (rusqlite), for native tests and tools.
//!
//! Behind the `sqlite` feature so the wasm Worker never links it. It runs
//! the repository's real D1 migrations, so tests exercise the same schema
//! and the same SQL as production.

use std::path::Path;

use crate::sql::{Row, SqlDatabase, SqlValue, StoreError};

/// An SQLite connection behind [`SqlDatabase`].
pub struct Sqlite(rusqlite::Connection);

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sqlite")
    }
}

fn db_err(e: &rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl Sqlite {
    /// An in-memory database with every `*.sql` file of `dir` applied in name order.
    pub fn in_memory_with_migrations(dir: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open_in_memory().map_err(|e| db_err(&e))?;
        // D1 always enforces foreign keys; so must the tests' SQLite.
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|e| db_err(&e))?;
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| StoreError::Database(e.to_string()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        for file in files {
            let sql =
                std::fs::read_to_string(&file).map_err(|e| StoreError::Database(e.to_string()))?;
            conn.execute_batch(&sql).map_err(|e| db_err(&e))?;
        }
        Ok(Self(conn))
    }

    /// An in-memory database with this repository's D1 migrations.
    pub fn with_repo_migrations() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        match Self::in_memory_with_migrations(&dir) {
            Ok(db) => db,
            Err(e) => panic!("cannot apply {}: {e}", dir.display()),
        }
    }
}

fn bind(params: &[SqlValue]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => rusqlite::types::Value::Null,
            SqlValue::Integer(i) => rusqlite::types::Value::Integer(*i),
            SqlValue::Real(r) => rusqlite::types::Value::Real(*r),
            SqlValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect()
}

impl SqlDatabase for Sqlite {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        self.0
            .execute(sql, rusqlite::params_from_iter(bind(params)))
            .map(|n| n as u64)
            .map_err(|e| db_err(&e))
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.0.prepare(sql).map_err(|e| db_err(&e))?;
        let names: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(bind(params)), |r| {
                let mut row = Row::new();
                for (i, name) in names.iter().enumerate() {
                    // D1 returns JSON numbers and strings; blobs do not occur in our schema.
                    let v = match r.get_ref(i)? {
                        ValueRef::Null | ValueRef::Blob(_) => serde_json::Value::Null,
                        ValueRef::Integer(n) => n.into(),
                        ValueRef::Real(x) => x.into(),
                        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    };
                    row.insert(name.clone(), v);
                }
                Ok(row)
            })
            .map_err(|e| db_err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| db_err(&e))
    }
}
