-- Nodes move to the lifecycle of sam_domain::lifecycle:
-- provisioning -> booting -> ready <-> warm -> destroying -> destroyed, plus error.
--
-- SQLite cannot change a CHECK constraint in place and migrations never drop
-- data, so the old table is kept under a new name and its rows are copied.
-- Each row carries the state machine's record (version for compare-and-set
-- claims, the holder, destroy retries) and its next deadline, which the
-- NodeLifecycle alarm and the cron sweep both act on.

ALTER TABLE nodes RENAME TO legacy_nodes_0001;

CREATE TABLE nodes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    size TEXT NOT NULL,
    location TEXT NOT NULL,
    server_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('provisioning', 'booting', 'ready', 'warm', 'destroying', 'destroyed', 'error')),
    -- Incremented on every state change: the compare-and-set token.
    version INTEGER NOT NULL DEFAULT 0,
    status_since INTEGER NOT NULL,
    -- When something must next happen to the node; NULL once destroyed.
    deadline_at INTEGER,
    -- The task or user holding the node (always set when ready, never when warm).
    claimed_by TEXT,
    -- The project the node last worked for, and its warm timeout (NULL: the default).
    project_id TEXT,
    warm_timeout_ms INTEGER,
    error_message TEXT,
    destroy_attempts INTEGER NOT NULL DEFAULT 0,
    last_destroy_at INTEGER,
    destroy_error TEXT,
    provider_server_id TEXT,
    ip_address TEXT,
    created_at INTEGER NOT NULL,
    agent_ready_at INTEGER,
    agent_version TEXT,
    last_heartbeat_at INTEGER,
    last_metrics TEXT,
    -- The user deleted the node: hidden from lists once destroyed.
    removed_at INTEGER
);

INSERT INTO nodes (
    id, user_id, name, provider, size, location, server_type, status, version,
    status_since, deadline_at, claimed_by, error_message, provider_server_id,
    ip_address, created_at, agent_ready_at, agent_version, last_heartbeat_at,
    last_metrics, removed_at)
SELECT
    id, user_id, name, provider, size, location, server_type,
    CASE status
        WHEN 'creating' THEN CASE WHEN provider_server_id IS NULL THEN 'provisioning' ELSE 'booting' END
        WHEN 'running' THEN 'ready'
        WHEN 'deleting' THEN 'destroying'
        WHEN 'deleted' THEN 'destroyed'
        ELSE 'error'
    END,
    1,
    status_changed_at,
    -- Due at once: the first alarm or sweep recomputes the real deadline.
    CASE WHEN status = 'deleted' THEN NULL ELSE status_changed_at END,
    -- Every legacy node was created by its user, who still holds it.
    CASE WHEN status IN ('creating', 'running') THEN 'user:' || user_id ELSE NULL END,
    error_message, provider_server_id, ip_address, created_at, agent_ready_at,
    agent_version, last_heartbeat_at, last_metrics, NULL
FROM legacy_nodes_0001;

CREATE INDEX nodes_by_owner ON nodes (user_id, created_at);
CREATE INDEX nodes_by_deadline ON nodes (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX nodes_warm_by_owner ON nodes (user_id, status_since) WHERE status = 'warm';

-- A project's own warm timeout for the nodes that worked for it (NULL: the
-- platform default).
ALTER TABLE projects ADD COLUMN warm_node_timeout_ms INTEGER;
