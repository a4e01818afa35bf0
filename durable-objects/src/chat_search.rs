//! Searching a project's chat: FTS5 when the object's SQLite has it, else
//! a plain table with `LIKE` (same results for whole words, slower).
//! What is indexed: session titles, the user's prompts, and each turn's
//! agent text once the turn has ended (chunks split words, so they are
//! indexed joined).

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

/// Sessions a search returns at most.
const MAX_RESULTS: i64 = 50;

/// Creates the FTS5 table if the storage supports it; whether it does.
pub fn prepare(sql: &SqlStorage) -> bool {
    sql.exec(
        "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(session_id UNINDEXED, body)",
        None,
    )
    .is_ok()
}

/// Makes `body` findable in `session_id`.
pub fn index(sql: &SqlStorage, fts: bool, session_id: &str, body: &str) -> worker::Result<()> {
    if body.trim().is_empty() {
        return Ok(());
    }
    let table = if fts { "search_fts" } else { "search_plain" };
    sql.exec(
        &format!("INSERT INTO {table} (session_id, body) VALUES (?, ?)"),
        vec![session_id.into(), body.into()],
    )?;
    Ok(())
}

/// The ids of sessions whose indexed text has every word of `query`, most
/// recently updated first.
pub fn search(sql: &SqlStorage, fts: bool, query: &str) -> worker::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
    }
    let terms = sam_domain::chat::search_terms(query);
    let rows: Vec<Row> = if fts {
        let Some(expr) = sam_domain::chat::fts_query(&terms) else {
            return Ok(Vec::new());
        };
        sql.exec(
            "SELECT s.id AS id FROM sessions s WHERE s.id IN \
             (SELECT session_id FROM search_fts WHERE search_fts MATCH ?) \
             ORDER BY s.updated_at DESC LIMIT ?",
            vec![expr.into(), MAX_RESULTS.into()],
        )?
        .to_array()?
    } else {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Each term must appear in some indexed text of the session.
        let clause = vec![
            "s.id IN (SELECT session_id FROM search_plain WHERE body LIKE ? ESCAPE '\\')";
            terms.len()
        ]
        .join(" AND ");
        let mut params: Vec<SqlStorageValue> = terms
            .iter()
            .map(|t| sam_domain::chat::like_pattern(t).into())
            .collect();
        params.push(MAX_RESULTS.into());
        sql.exec(
            &format!(
                "SELECT s.id AS id FROM sessions s WHERE {clause} \
                 ORDER BY s.updated_at DESC LIMIT ?"
            ),
            params,
        )?
        .to_array()?
    };
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The agent text of the session's latest turn (its chunks after the last
/// `prompt_sent`), joined.
pub fn latest_turn_text(sql: &SqlStorage, session_id: &str) -> worker::Result<String> {
    #[derive(Deserialize)]
    struct Row {
        text: Option<String>,
    }
    let rows: Vec<Row> = sql
        .exec(
            "SELECT json_extract(payload, '$.update.content.text') AS text FROM messages \
             WHERE session_id = ? AND kind = 'update' \
             AND json_extract(payload, '$.update.sessionUpdate') = 'agent_message_chunk' \
             AND seq > COALESCE((SELECT MAX(seq) FROM messages WHERE session_id = ? \
                                 AND kind = 'prompt_sent'), 0) \
             ORDER BY seq",
            vec![session_id.into(), session_id.into()],
        )?
        .to_array()?;
    Ok(rows.into_iter().filter_map(|r| r.text).collect())
}
