//! `sam_store::SqlDatabase` over a D1 binding.

use sam_store::{Row, SqlDatabase, SqlValue, StoreError};
use wasm_bindgen::JsValue;
use worker::D1Database;

/// D1 behind the storage port.
pub struct D1Sql(pub D1Database);

fn bind(params: &[SqlValue]) -> Vec<JsValue> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => JsValue::NULL,
            // D1 takes JS numbers; our integers are millisecond timestamps and
            // counters, far below 2^53.
            #[allow(clippy::cast_precision_loss)]
            SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
            SqlValue::Real(r) => JsValue::from_f64(*r),
            SqlValue::Text(t) => JsValue::from_str(t),
        })
        .collect()
}

fn db_error(e: &worker::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqlDatabase for D1Sql {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let result = self
            .0
            .prepare(sql)
            .bind(&bind(params))
            .map_err(|e| db_error(&e))?
            .run()
            .await
            .map_err(|e| db_error(&e))?;
        let changes = result
            .meta()
            .map_err(|e| db_error(&e))?
            .and_then(|m| m.changes)
            .unwrap_or(0);
        Ok(u64::try_from(changes).unwrap_or(0))
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let result = self
            .0
            .prepare(sql)
            .bind(&bind(params))
            .map_err(|e| db_error(&e))?
            .all()
            .await
            .map_err(|e| db_error(&e))?;
        result.results::<Row>().map_err(|e| db_error(&e))
    }
}
