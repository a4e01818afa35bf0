//! The key-rotation sweep, once for every table of sealed values.

use sam_store::StoreError;
use sam_vault::CredentialKeys;

use crate::error::ControlError;

/// One stored envelope: its row id, the envelope, and the associated data
/// it is bound to.
pub(crate) struct SealedRow {
    pub id: String,
    pub envelope: String,
    pub aad: Vec<u8>,
}

/// Re-seals every envelope under the active key, page by page (`page`
/// returns the rows after an id, in id order), swapping each only if it is
/// unchanged (`replace(id, old, new)`), so a concurrent update by a user is
/// never overwritten. Returns how many moved.
pub(crate) async fn reseal_all(
    keys: &CredentialKeys,
    nonce: &mut impl FnMut() -> [u8; 12],
    mut page: impl AsyncFnMut(&str) -> Result<Vec<SealedRow>, StoreError>,
    mut replace: impl AsyncFnMut(&str, &str, &str) -> Result<bool, StoreError>,
) -> Result<usize, ControlError> {
    let mut moved = 0;
    let mut after = String::new();
    loop {
        let rows = page(&after).await?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        for row in &rows {
            if !sam_vault::needs_rotation(keys, &row.envelope).map_err(ControlError::Vault)? {
                continue;
            }
            let sealed = sam_vault::reencrypt(keys, &row.envelope, &row.aad, nonce())
                .map_err(ControlError::Vault)?;
            if replace(&row.id, &row.envelope, &sealed).await? {
                moved += 1;
            }
        }
    }
    Ok(moved)
}
