//! The outbox's SQLite file: every message is written, with its session's
//! next sequence number, before anything tries to deliver it.
//!
//! Durability: WAL with `synchronous=FULL`, so every committed append is on
//! disk when [`OutboxStore::append`] returns, even across a power cut or a
//! hard reboot of the VM. `NORMAL` (the usual WAL pairing) survives a
//! process crash but may roll back the last commits on an OS crash; here
//! that would be worse than a lost message: the rolled-back sequence
//! numbers would be handed out again to *different* messages, which the
//! API, having already seen those numbers, would drop as duplicates. One
//! fsync per append is the price; session updates come at human (or token
//! stream) pace, well within what a disk does.
//!
//! Sequence numbers come from a per-session counter (`sessions.last_seq`),
//! not from `MAX(seq)` over the messages, so pruning delivered messages
//! never makes a number come round again. The counters (one small row per
//! session) are kept for the life of the file for the same reason.

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

/// The largest payload [`OutboxStore::append`] accepts. Bigger ones (a
/// huge tool output) are the caller's to trim before appending.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The longest session id or kind accepted.
pub const MAX_KEY_BYTES: usize = 128;

/// Where the outbox lives under the agent's filesystem root.
const RELATIVE_PATH: &str = "var/lib/sam/outbox.sqlite3";

/// How long a writer waits for another connection's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one entry per version: `PRAGMA user_version` says how many
/// have been applied. Append only; never edit an entry that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: messages and the per-session counters.
    "CREATE TABLE sessions (
         session_id TEXT PRIMARY KEY NOT NULL,
         last_seq INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE messages (
         session_id TEXT NOT NULL,
         seq INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         kind TEXT NOT NULL,
         payload TEXT NOT NULL,
         delivered_at INTEGER,
         PRIMARY KEY (session_id, seq)
     ) STRICT;
     -- What delivery reads: the undelivered messages, per session in order.
     CREATE INDEX messages_pending ON messages (session_id, seq)
         WHERE delivered_at IS NULL;
     -- What pruning reads.
     CREATE INDEX messages_delivered ON messages (delivered_at)
         WHERE delivered_at IS NOT NULL;",
    // 2: where each session's messages go (its workspace, and the
    // workspace's callback token), so undelivered messages still find
    // their URL after a restart, or after their workspace is gone.
    "CREATE TABLE routes (
         session_id TEXT PRIMARY KEY NOT NULL,
         workspace_id TEXT NOT NULL,
         callback_token TEXT NOT NULL
     ) STRICT;",
    // 3: what a restarted agent needs to end the sessions of its
    // predecessor: whether each session has had its last message or has a
    // turn in flight (kept beside the counters, so pruning cannot lose
    // them), and the agent process (group leader and its start time) each
    // session runs. Sessions from before this version are taken as ended
    // when their last message is there or nothing of them is left.
    "ALTER TABLE sessions ADD COLUMN turn_open INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE sessions ADD COLUMN closed INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE routes ADD COLUMN agent_pid INTEGER;
     ALTER TABLE routes ADD COLUMN agent_start_ticks INTEGER;
     UPDATE sessions SET closed = 1
      WHERE EXISTS (SELECT 1 FROM messages AS m
                     WHERE m.session_id = sessions.session_id
                       AND m.kind IN ('agent_exited', 'agent_start_failed'))
         OR NOT EXISTS (SELECT 1 FROM messages AS m
                         WHERE m.session_id = sessions.session_id);
     UPDATE sessions SET turn_open = 1
      WHERE closed = 0
        AND (SELECT m.kind FROM messages AS m
              WHERE m.session_id = sessions.session_id
                AND m.kind IN ('prompt_sent', 'turn_ended', 'turn_failed')
              ORDER BY m.seq DESC LIMIT 1) = 'prompt_sent';",
];

/// Why an outbox operation failed. Each variant has a stable [`code`].
///
/// [`code`]: OutboxError::code
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot prepare the outbox file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("outbox database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("the outbox schema is version {found}; this agent knows versions up to {supported}")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("a payload of {bytes} bytes is over the {max}-byte limit")]
    PayloadTooLarge { bytes: usize, max: usize },
    #[error("the payload is not JSON")]
    PayloadNotJson,
    #[error("the {0} must be 1 to 128 bytes")]
    InvalidKey(&'static str),
    #[error("the outbox task failed")]
    TaskFailed,
}

impl OutboxError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "outbox_io",
            Self::Database(_) => "outbox_database",
            Self::SchemaTooNew { .. } => "outbox_schema_too_new",
            Self::PayloadTooLarge { .. } => "outbox_payload_too_large",
            Self::PayloadNotJson => "outbox_payload_not_json",
            Self::InvalidKey(_) => "outbox_invalid_key",
            Self::TaskFailed => "outbox_task_failed",
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 1, 2, 3, ... within its session.
    pub seq: u64,
    /// Unix milliseconds, as given to [`OutboxStore::append`].
    pub created_at: i64,
    pub kind: String,
    /// JSON text.
    pub payload: String,
}

/// Undelivered messages of one session: consecutive, in sequence order,
/// starting at the session's oldest undelivered message. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub session_id: String,
    pub messages: Vec<Message>,
}

impl Batch {
    pub fn first_seq(&self) -> u64 {
        self.messages.first().map_or(0, |m| m.seq)
    }

    pub fn last_seq(&self) -> u64 {
        self.messages.last().map_or(0, |m| m.seq)
    }
}

/// Where one session's messages are delivered. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Route {
    pub workspace_id: String,
    /// The workspace's callback token when the session started: used when
    /// the workspace is no longer in the registry.
    pub callback_token: String,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("workspace_id", &self.workspace_id)
            .finish_non_exhaustive()
    }
}

/// What an appended message says about its session, kept beside the
/// session's counter (messages themselves are pruned once delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Nothing in particular.
    None,
    /// A turn starts (the prompt goes to the agent).
    TurnStarted,
    /// The turn in flight ended, one way or another.
    TurnEnded,
    /// The session's last message: nothing follows it.
    Last,
}

/// The agent process a session runs: the leader of its own process group,
/// and its start time in clock ticks since boot (`/proc/<pid>/stat` field
/// 22), which tells it from a later process that got the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentProcess {
    pub pid: u32,
    pub start_ticks: u64,
}

/// A session that has not had its last message (see [`Mark::Last`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub session_id: String,
    /// Whether any message was stored (the first is `session_started`).
    pub started: bool,
    /// Whether a turn started and has not ended.
    pub turn_open: bool,
    /// The agent process, once recorded.
    pub process: Option<AgentProcess>,
}

/// Counts for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub pending: u64,
    /// Delivered and not yet pruned.
    pub delivered: u64,
    pub pending_sessions: u64,
    /// `created_at` of the oldest undelivered message.
    pub oldest_pending_at: Option<i64>,
}

/// The outbox file. Synchronous: async code goes through
/// [`Outbox`](super::Outbox), which runs it on the blocking pool.
pub struct OutboxStore {
    conn: Connection,
}

impl OutboxStore {
    /// `<fs_root>/var/lib/sam/outbox.sqlite3`.
    pub fn default_path(fs_root: &Path) -> PathBuf {
        fs_root.join(RELATIVE_PATH)
    }

    /// Opens (or creates) the outbox at `path` and brings its schema up to
    /// date. Refuses a file written by a newer agent rather than guess at
    /// its schema.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        let io = |source| OutboxError::Io {
            path: path.to_owned(),
            source,
        };
        // Default modes, as the workspace registry creates them: workspace
        // checkouts live under the same `var/lib/sam` and must stay
        // reachable. The file's own 0600 keeps the messages private.
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Created here with 0600 rather than by SQLite with the umask's mode;
        // SQLite gives the -wal and -shm files the database file's mode.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        drop(file);

        let mut conn = Connection::open(path)?;
        // Other connections (a second store in tests, a lingering task of
        // a previous loop) hold the write lock only briefly: wait for it.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Still durable with FULL, only slower: not worth refusing.
            tracing::warn!(%mode, "the outbox file system does not support WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        Ok(Self { conn })
    }

    /// Stores a message and returns its sequence number: the session's
    /// previous one plus one, starting at 1.
    pub fn append(
        &mut self,
        session_id: &str,
        kind: &str,
        payload_json: &str,
        now: i64,
    ) -> Result<u64, OutboxError> {
        self.append_marked(session_id, kind, payload_json, now, Mark::None)
    }

    /// [`append`](Self::append), recording in the same transaction what
    /// the message says about its session ([`Mark`]).
    pub fn append_marked(
        &mut self,
        session_id: &str,
        kind: &str,
        payload_json: &str,
        now: i64,
        mark: Mark,
    ) -> Result<u64, OutboxError> {
        check_key("session id", session_id)?;
        check_key("kind", kind)?;
        if payload_json.len() > MAX_PAYLOAD_BYTES {
            return Err(OutboxError::PayloadTooLarge {
                bytes: payload_json.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        // Checked now: a message the API cannot parse would block its
        // session's delivery for good.
        serde_json::from_str::<serde::de::IgnoredAny>(payload_json)
            .map_err(|_| OutboxError::PayloadNotJson)?;

        // IMMEDIATE takes the write lock up front, so the counter bump and
        // the insert are one step no other connection can interleave with.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // `turn` NULL leaves the flag as it is.
        let (turn, last): (Option<i64>, i64) = match mark {
            Mark::None => (None, 0),
            Mark::TurnStarted => (Some(1), 0),
            Mark::TurnEnded => (Some(0), 0),
            Mark::Last => (Some(0), 1),
        };
        let seq: u64 = tx.query_row(
            "INSERT INTO sessions (session_id, last_seq, turn_open, closed)
             VALUES (?1, 1, coalesce(?2, 0), ?3)
             ON CONFLICT (session_id) DO UPDATE SET last_seq = last_seq + 1,
                 turn_open = coalesce(?2, turn_open), closed = max(closed, ?3)
             RETURNING last_seq",
            params![session_id, turn, last],
            |row| row.get(0),
        )?;
        tx.execute(
            "INSERT INTO messages (session_id, seq, created_at, kind, payload)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![session_id, seq, now, kind, payload_json],
        )?;
        tx.commit()?;
        Ok(seq)
    }

    /// Undelivered messages, at most `limit_messages` and (past the first
    /// one, which always goes) `limit_bytes` of kinds and payloads, as one
    /// batch per session.
    ///
    /// Fair: sessions take turns (every session's first message, then every
    /// session's second, ...), so a chatty session cannot starve a quiet
    /// one, and batches come in the order their sessions started waiting.
    /// Each batch is a prefix of its session's undelivered messages, so
    /// delivering it never leaves a gap.
    pub fn pending(
        &self,
        limit_messages: usize,
        limit_bytes: usize,
    ) -> Result<Vec<Batch>, OutboxError> {
        // Among the rows present, rowid is insertion order (a new row gets
        // one more than the largest): `since` is when the session started
        // waiting, `turn` the message's place in its session's queue. Only
        // the pending index is scanned and sorted; payloads are read for
        // the rows kept.
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.session_id, m.seq, m.created_at, m.kind, m.payload
             FROM (SELECT rowid AS id,
                          row_number() OVER (PARTITION BY session_id ORDER BY seq) AS turn,
                          min(rowid) OVER (PARTITION BY session_id) AS since
                   FROM messages WHERE delivered_at IS NULL) AS p
             JOIN messages AS m ON m.rowid = p.id
             ORDER BY p.turn, p.since
             LIMIT ?1",
        )?;
        let mut rows = stmt.query([limit_messages])?;
        let mut batches: Vec<Batch> = Vec::new();
        let mut bytes = 0;
        while let Some(row) = rows.next()? {
            let session_id: String = row.get(0)?;
            let message = Message {
                seq: row.get(1)?,
                created_at: row.get(2)?,
                kind: row.get(3)?,
                payload: row.get(4)?,
            };
            bytes += message.kind.len() + message.payload.len();
            // Stop rather than skip: skipping could take a session's next
            // message without this one.
            if bytes > limit_bytes && !batches.is_empty() {
                break;
            }
            match batches.iter_mut().find(|b| b.session_id == session_id) {
                Some(batch) => batch.messages.push(message),
                None => batches.push(Batch {
                    session_id,
                    messages: vec![message],
                }),
            }
        }
        Ok(batches)
    }

    /// Marks the session's messages up to `up_to_seq` delivered. Idempotent,
    /// and never un-delivers: already delivered messages keep their time.
    /// Only messages that exist are marked, so an ack beyond the last one
    /// does not cover messages appended later. Returns how many it marked.
    pub fn ack(
        &mut self,
        session_id: &str,
        up_to_seq: u64,
        now: i64,
    ) -> Result<usize, OutboxError> {
        let up_to = i64::try_from(up_to_seq).unwrap_or(i64::MAX);
        Ok(self.conn.execute(
            "UPDATE messages SET delivered_at = ?3
             WHERE session_id = ?1 AND seq <= ?2 AND delivered_at IS NULL",
            params![session_id, up_to, now],
        )?)
    }

    /// Deletes messages delivered before `delivered_before`; undelivered
    /// ones are never deleted. Returns how many it deleted.
    pub fn prune(&mut self, delivered_before: i64) -> Result<usize, OutboxError> {
        Ok(self.conn.execute(
            "DELETE FROM messages
             WHERE delivered_at IS NOT NULL AND delivered_at < ?1",
            [delivered_before],
        )?)
    }

    /// Records (or replaces) where `session_id`'s messages are delivered.
    pub fn set_route(&mut self, session_id: &str, route: &Route) -> Result<(), OutboxError> {
        check_key("session id", session_id)?;
        self.conn.execute(
            "INSERT INTO routes (session_id, workspace_id, callback_token) VALUES (?1, ?2, ?3)
             ON CONFLICT (session_id) DO UPDATE
             SET workspace_id = excluded.workspace_id, callback_token = excluded.callback_token",
            params![session_id, route.workspace_id, route.callback_token],
        )?;
        Ok(())
    }

    /// Where `session_id`'s messages go, if recorded.
    pub fn route(&self, session_id: &str) -> Result<Option<Route>, OutboxError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT workspace_id, callback_token FROM routes WHERE session_id = ?1",
        )?;
        let mut rows = stmt.query([session_id])?;
        match rows.next()? {
            Some(row) => Ok(Some(Route {
                workspace_id: row.get(0)?,
                callback_token: row.get(1)?,
            })),
            None => Ok(None),
        }
    }

    /// Records the agent process `session_id` runs (its route must exist).
    /// Returns whether the route was there.
    pub fn set_agent_process(
        &mut self,
        session_id: &str,
        process: AgentProcess,
    ) -> Result<bool, OutboxError> {
        let pid = i64::from(process.pid);
        let ticks = i64::try_from(process.start_ticks).unwrap_or(i64::MAX);
        Ok(self.conn.execute(
            "UPDATE routes SET agent_pid = ?2, agent_start_ticks = ?3 WHERE session_id = ?1",
            params![session_id, pid, ticks],
        )? == 1)
    }

    /// Every session with a route that has not had its last message, in
    /// the order their routes were recorded.
    pub fn open_sessions(&self) -> Result<Vec<OpenSession>, OutboxError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.session_id, s.last_seq IS NOT NULL, coalesce(s.turn_open, 0),
                    r.agent_pid, r.agent_start_ticks
             FROM routes AS r LEFT JOIN sessions AS s ON s.session_id = r.session_id
             WHERE coalesce(s.closed, 0) = 0
             ORDER BY r.rowid",
        )?;
        let rows = stmt.query_map([], |row| {
            let pid: Option<i64> = row.get(3)?;
            let ticks: Option<i64> = row.get(4)?;
            let process = match (pid, ticks) {
                (Some(pid), Some(ticks)) => match (u32::try_from(pid), u64::try_from(ticks)) {
                    (Ok(pid), Ok(start_ticks)) => Some(AgentProcess { pid, start_ticks }),
                    _ => None,
                },
                _ => None,
            };
            Ok(OpenSession {
                session_id: row.get(0)?,
                started: row.get(1)?,
                turn_open: row.get::<_, i64>(2)? != 0,
                process,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn stats(&self) -> Result<Stats, OutboxError> {
        // An aggregate without GROUP BY: always exactly one row.
        Ok(self.conn.query_row(
            "SELECT count(*) FILTER (WHERE delivered_at IS NULL),
                        count(*) FILTER (WHERE delivered_at IS NOT NULL),
                        count(DISTINCT session_id) FILTER (WHERE delivered_at IS NULL),
                        min(created_at) FILTER (WHERE delivered_at IS NULL)
                 FROM messages",
            [],
            |row| {
                Ok(Stats {
                    pending: row.get(0)?,
                    delivered: row.get(1)?,
                    pending_sessions: row.get(2)?,
                    oldest_pending_at: row.get(3)?,
                })
            },
        )?)
    }
}

fn check_key(field: &'static str, value: &str) -> Result<(), OutboxError> {
    if value.is_empty() || value.len() > MAX_KEY_BYTES {
        return Err(OutboxError::InvalidKey(field));
    }
    Ok(())
}

/// Applies the migrations the file has not seen, in one transaction (a
/// second connection opening at the same time waits, then finds it done).
fn migrate(conn: &mut Connection) -> Result<(), OutboxError> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > supported {
        return Err(OutboxError::SchemaTooNew { found, supported });
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", supported)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> OutboxStore {
        OutboxStore::open(&OutboxStore::default_path(dir.path())).unwrap()
    }

    fn seqs(batch: &Batch) -> Vec<u64> {
        batch.messages.iter().map(|m| m.seq).collect()
    }

    fn payload(n: usize) -> String {
        format!("{{\"n\":{n}}}")
    }

    #[test]
    fn seqs_start_at_one_and_count_up_per_session() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let got: Vec<u64> = ["a", "b", "a", "a", "c", "b"]
            .iter()
            .enumerate()
            .map(|(i, s)| store.append(s, "update", &payload(i), 10).unwrap())
            .collect();
        assert_eq!(got, [1, 1, 2, 3, 1, 2]);
    }

    #[test]
    fn pending_keeps_seq_order_and_takes_sessions_in_turn_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        for _ in 0..3 {
            store.append("chatty", "update", "{}", 1).unwrap();
        }
        store.append("quiet", "update", "{}", 2).unwrap();
        for _ in 0..2 {
            store.append("chatty", "update", "{}", 3).unwrap();
        }

        let all = store.pending(100, usize::MAX).unwrap();
        let shape: Vec<(&str, Vec<u64>)> = all
            .iter()
            .map(|b| (b.session_id.as_str(), seqs(b)))
            .collect();
        assert_eq!(shape, [("chatty", vec![1, 2, 3, 4, 5]), ("quiet", vec![1])]);

        // With room for three, the quiet session still gets its turn.
        let fair = store.pending(3, usize::MAX).unwrap();
        let shape: Vec<(&str, Vec<u64>)> = fair
            .iter()
            .map(|b| (b.session_id.as_str(), seqs(b)))
            .collect();
        assert_eq!(shape, [("chatty", vec![1, 2]), ("quiet", vec![1])]);

        // Acked messages drop out; the rest still starts at the oldest.
        store.ack("chatty", 2, 5).unwrap();
        let rest = store.pending(100, usize::MAX).unwrap();
        assert_eq!(seqs(&rest[0]), [3, 4, 5]);
        assert_eq!(rest[1].session_id, "quiet");
        assert_eq!(rest[0].messages[0].created_at, 1);
    }

    #[test]
    fn pending_stops_at_the_byte_limit_but_always_returns_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let big = format!("\"{}\"", "x".repeat(1000));
        for _ in 0..4 {
            store.append("s", "k", &big, 1).unwrap();
        }
        let each = 1 + 1000 + 2; // kind and quoted payload
        assert_eq!(seqs(&store.pending(100, 2 * each).unwrap()[0]), [1, 2]);
        assert_eq!(seqs(&store.pending(100, 10).unwrap()[0]), [1]);
        assert!(store.pending(0, usize::MAX).unwrap().is_empty());
    }

    #[test]
    fn ack_is_idempotent_and_never_unacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        for i in 0..4 {
            store.append("s", "k", &payload(i), 1).unwrap();
        }
        assert_eq!(store.ack("s", 2, 100).unwrap(), 2);
        assert_eq!(
            store.ack("s", 2, 200).unwrap(),
            0,
            "a repeated ack is a no-op"
        );
        assert_eq!(
            store.ack("s", 1, 300).unwrap(),
            0,
            "a lower ack un-acks nothing"
        );
        assert_eq!(seqs(&store.pending(100, usize::MAX).unwrap()[0]), [3, 4]);
        // The first ack's time stands, so pruning sees the real age.
        assert_eq!(store.prune(101).unwrap(), 2);
        assert_eq!(store.ack("other", 5, 1).unwrap(), 0);
    }

    #[test]
    fn ack_beyond_the_last_message_does_not_cover_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        store.append("s", "k", "1", 1).unwrap();
        store.append("s", "k", "2", 1).unwrap();
        assert_eq!(store.ack("s", u64::MAX, 2).unwrap(), 2);
        assert_eq!(store.append("s", "k", "3", 3).unwrap(), 3);
        assert_eq!(seqs(&store.pending(100, usize::MAX).unwrap()[0]), [3]);
    }

    #[test]
    fn payloads_over_256_kib_or_not_json_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let at_limit = format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES - 2));
        assert_eq!(store.append("s", "k", &at_limit, 1).unwrap(), 1);

        let over = format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES - 1));
        let err = store.append("s", "k", &over, 1).unwrap_err();
        assert_eq!(err.code(), "outbox_payload_too_large");
        let err = store.append("s", "k", "{not json", 1).unwrap_err();
        assert_eq!(err.code(), "outbox_payload_not_json");
        let err = store.append("", "k", "{}", 1).unwrap_err();
        assert_eq!(err.code(), "outbox_invalid_key");
        let err = store.append("s", &"k".repeat(129), "{}", 1).unwrap_err();
        assert_eq!(err.code(), "outbox_invalid_key");

        // Refusals use no sequence number.
        assert_eq!(store.append("s", "k", "{}", 1).unwrap(), 2);
    }

    #[test]
    fn reopening_keeps_everything_and_continues_the_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        store.append("a", "k", "1", 1).unwrap();
        store.append("a", "k", "2", 2).unwrap();
        store.append("b", "k", "3", 3).unwrap();
        store.ack("a", 1, 4).unwrap();
        let before = store.pending(100, usize::MAX).unwrap();
        drop(store);

        let mut store = open(&dir);
        assert_eq!(store.pending(100, usize::MAX).unwrap(), before);
        assert_eq!(store.append("a", "k", "4", 5).unwrap(), 3);
        assert_eq!(store.append("b", "k", "5", 5).unwrap(), 2);
        assert_eq!(
            store.stats().unwrap(),
            Stats {
                pending: 4,
                delivered: 1,
                pending_sessions: 2,
                oldest_pending_at: Some(2),
            }
        );
    }

    #[test]
    fn pruning_deletes_only_old_delivered_messages_and_seqs_still_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        for i in 0..3 {
            store.append("s", "k", &payload(i), 1).unwrap();
        }
        store.ack("s", 1, 10).unwrap();
        store.ack("s", 2, 20).unwrap();
        assert_eq!(store.prune(10).unwrap(), 0, "strictly before");
        assert_eq!(store.prune(20).unwrap(), 1);
        assert_eq!(store.prune(i64::MAX).unwrap(), 1);
        assert_eq!(store.stats().unwrap().pending, 1, "seq 3 is not delivered");
        store.ack("s", 3, 30).unwrap();
        assert_eq!(store.prune(i64::MAX).unwrap(), 1);
        assert_eq!(store.stats().unwrap(), Stats::default());

        // Every message of the session is gone; its numbers are not reused.
        assert_eq!(store.append("s", "k", "{}", 40).unwrap(), 4);
    }

    #[test]
    fn concurrent_appends_from_threads_get_distinct_consecutive_seqs() {
        const THREADS: usize = 4;
        const EACH: usize = 25;
        let dir = tempfile::tempdir().unwrap();
        let path = OutboxStore::default_path(dir.path());
        drop(open(&dir));
        // One connection per thread: the transaction, not a Rust lock,
        // keeps the numbers apart.
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut store = OutboxStore::open(&path).unwrap();
                    (0..EACH)
                        .map(|i| {
                            let seq = store.append("s", "k", &payload(t * EACH + i), 1).unwrap();
                            (seq, t * EACH + i)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut got: Vec<(u64, usize)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        got.sort_unstable();
        let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
        let expected: Vec<u64> = (1..=u64::try_from(THREADS * EACH).unwrap()).collect();
        assert_eq!(seqs, expected);

        // Each seq holds the payload its append was told it got.
        let store = open(&dir);
        let stored = &store.pending(1000, usize::MAX).unwrap()[0].messages;
        for (message, (seq, n)) in stored.iter().zip(&got) {
            assert_eq!((message.seq, message.payload.clone()), (*seq, payload(*n)));
        }
    }

    #[test]
    fn the_file_is_private_wal_full_sync_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        store.append("s", "k", "{}", 1).unwrap();
        let path = OutboxStore::default_path(dir.path());
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let conn = &store.conn;
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        // 2 = FULL.
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 3);
    }

    fn route(workspace: &str) -> Route {
        Route {
            workspace_id: workspace.to_owned(),
            callback_token: "t".to_owned(),
        }
    }

    #[test]
    fn open_sessions_follow_the_marks_even_after_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        for id in ["busy", "idle", "ended", "unstarted"] {
            store.set_route(id, &route("w")).unwrap();
        }
        store.append("busy", "session_started", "{}", 1).unwrap();
        store
            .append_marked("busy", "prompt_sent", "{}", 1, Mark::TurnStarted)
            .unwrap();
        store.append("busy", "update", "{}", 1).unwrap();
        store
            .append_marked("idle", "prompt_sent", "{}", 1, Mark::TurnStarted)
            .unwrap();
        store
            .append_marked("idle", "turn_ended", "{}", 1, Mark::TurnEnded)
            .unwrap();
        store
            .append_marked("ended", "prompt_sent", "{}", 1, Mark::TurnStarted)
            .unwrap();
        store
            .append_marked("ended", "agent_exited", "{}", 1, Mark::Last)
            .unwrap();
        let process = AgentProcess {
            pid: 4242,
            start_ticks: 77,
        };
        assert!(store.set_agent_process("busy", process).unwrap());
        assert!(!store.set_agent_process("no-route", process).unwrap());

        let expected = vec![
            OpenSession {
                session_id: "busy".to_owned(),
                started: true,
                turn_open: true,
                process: Some(process),
            },
            OpenSession {
                session_id: "idle".to_owned(),
                started: true,
                turn_open: false,
                process: None,
            },
            OpenSession {
                session_id: "unstarted".to_owned(),
                started: false,
                turn_open: false,
                process: None,
            },
        ];
        assert_eq!(store.open_sessions().unwrap(), expected);
        for id in ["busy", "idle", "ended"] {
            store.ack(id, u64::MAX, 2).unwrap();
        }
        assert_eq!(store.prune(i64::MAX).unwrap(), 7);
        assert_eq!(
            store.open_sessions().unwrap(),
            expected,
            "pruning keeps the marks"
        );
        // A mark-less message neither opens nor closes a turn; a last one
        // closes the session for good.
        store.append("busy", "update", "{}", 3).unwrap();
        assert!(store.open_sessions().unwrap()[0].turn_open);
        store
            .append_marked("busy", "agent_exited", "{}", 3, Mark::Last)
            .unwrap();
        store.append("busy", "update", "{}", 3).unwrap();
        let open: Vec<String> = store
            .open_sessions()
            .unwrap()
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        assert_eq!(open, ["idle", "unstarted"]);
    }

    #[test]
    fn version_3_works_out_the_marks_of_older_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let path = OutboxStore::default_path(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        let put = |session: &str, seq: i64, kind: &str, delivered: Option<i64>| {
            conn.execute(
                "INSERT INTO sessions (session_id, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (session_id) DO UPDATE SET last_seq = ?2",
                params![session, seq],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO messages (session_id, seq, created_at, kind, payload, delivered_at)
                 VALUES (?1, ?2, 1, ?3, '{}', ?4)",
                params![session, seq, kind, delivered],
            )
            .unwrap();
        };
        put("mid-turn", 1, "session_started", Some(5));
        put("mid-turn", 2, "prompt_sent", None);
        put("mid-turn", 3, "update", None);
        put("between", 1, "prompt_sent", None);
        put("between", 2, "turn_failed", None);
        put("exited", 1, "prompt_sent", None);
        put("exited", 2, "agent_exited", None);
        put("pruned", 1, "update", Some(5));
        conn.execute("DELETE FROM messages WHERE session_id = 'pruned'", [])
            .unwrap();
        for id in ["mid-turn", "between", "exited", "pruned"] {
            conn.execute("INSERT INTO routes VALUES (?1, 'w', 't')", params![id])
                .unwrap();
        }
        drop(conn);

        let store = OutboxStore::open(&path).unwrap();
        let open: Vec<(String, bool, bool)> = store
            .open_sessions()
            .unwrap()
            .into_iter()
            .map(|s| (s.session_id, s.started, s.turn_open))
            .collect();
        assert_eq!(
            open,
            [
                ("mid-turn".to_owned(), true, true),
                ("between".to_owned(), true, false)
            ]
        );
    }

    #[test]
    fn a_file_from_a_newer_agent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(&dir));
        let path = OutboxStore::default_path(dir.path());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 4)
            .unwrap();
        let err = OutboxStore::open(&path).err().unwrap();
        assert_eq!(err.code(), "outbox_schema_too_new");
    }
}
