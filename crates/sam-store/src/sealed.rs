//! What every table of vault-sealed values shares: paging through all rows
//! for the key-rotation sweep, and swapping an envelope compare-and-set.

use serde::de::DeserializeOwned;

use crate::sql::{SqlDatabase, StoreError, query_as};

/// A page of `table`'s rows (as `columns`) after `after_id`, in id order.
pub(crate) async fn page_after<T: DeserializeOwned>(
    db: &impl SqlDatabase,
    table: &str,
    columns: &str,
    after_id: &str,
    limit: u32,
) -> Result<Vec<T>, StoreError> {
    query_as(
        db,
        &format!("SELECT {columns} FROM {table} WHERE id > ? ORDER BY id LIMIT ?"),
        &[after_id.into(), i64::from(limit).into()],
    )
    .await
}

/// Replaces a row's envelope if it is still `old`, so a concurrent update
/// by the user is never overwritten by the sweep.
pub(crate) async fn replace_envelope(
    db: &impl SqlDatabase,
    table: &str,
    id: &str,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    let changed = db
        .execute(
            &format!("UPDATE {table} SET secret_envelope = ? WHERE id = ? AND secret_envelope = ?"),
            &[new.into(), id.into(), old.into()],
        )
        .await?;
    Ok(changed > 0)
}
