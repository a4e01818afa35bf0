-- Users and nodes: the spine's vertical slice.
-- IDs are ULID TEXT (never integers: JavaScript loses precision past 2^53).
-- Times are Unix milliseconds.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    login TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    size TEXT NOT NULL,
    location TEXT NOT NULL,
    server_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('creating', 'running', 'deleting', 'deleted', 'error')),
    status_changed_at INTEGER NOT NULL,
    error_message TEXT,
    provider_server_id TEXT,
    ip_address TEXT,
    created_at INTEGER NOT NULL,
    agent_ready_at INTEGER,
    agent_version TEXT,
    last_heartbeat_at INTEGER,
    last_metrics TEXT,
    deleted_at INTEGER
);

CREATE INDEX nodes_by_user ON nodes (user_id, created_at);
CREATE INDEX nodes_by_status ON nodes (status, status_changed_at);
