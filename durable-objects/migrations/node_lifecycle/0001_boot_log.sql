-- NodeLifecycle: one Durable Object per node.
-- `lifecycle` holds the single state row; `boot_events` the per-phase boot log.
CREATE TABLE IF NOT EXISTS lifecycle (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    node_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    boot_deadline_at INTEGER
);
CREATE TABLE IF NOT EXISTS boot_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    phase TEXT NOT NULL,
    detail TEXT
);
