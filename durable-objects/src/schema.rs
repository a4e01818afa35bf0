//! Durable Object schema migrations.
//!
//! Each class's SQL files (under `durable-objects/migrations/<class>/`) are
//! compiled in and applied in order, tracked in `_schema_migrations`. The
//! migration gate (`cargo xtask test`) keeps these files append-only.

use worker::{SqlStorage, SqlStorageValue};

/// Applies every migration in `files` (name, SQL) not yet recorded.
pub fn migrate(sql: &SqlStorage, files: &[(&str, &str)]) -> worker::Result<()> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS _schema_migrations (name TEXT PRIMARY KEY NOT NULL)",
        None,
    )?;
    for (name, body) in files {
        #[derive(serde::Deserialize)]
        struct Count {
            n: i64,
        }
        let seen: Count = sql
            .exec(
                "SELECT COUNT(*) AS n FROM _schema_migrations WHERE name = ?",
                vec![SqlStorageValue::from(name.to_string())],
            )?
            .one()?;
        if seen.n == 0 {
            sql.exec(body, None)?;
            sql.exec(
                "INSERT INTO _schema_migrations (name) VALUES (?)",
                vec![SqlStorageValue::from(name.to_string())],
            )?;
        }
    }
    Ok(())
}

/// The object's SQLite storage, with `files` applied the first time this
/// instance asks (`done` remembers it).
pub fn migrated(
    state: &worker::State,
    done: &std::cell::Cell<bool>,
    files: &[(&str, &str)],
) -> worker::Result<SqlStorage> {
    let sql = state.storage().sql();
    if !done.get() {
        migrate(&sql, files)?;
        done.set(true);
    }
    Ok(sql)
}
