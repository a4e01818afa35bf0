-- Workspaces: a project's repository checked out on a node (see
-- docs/workspaces.md). Status follows sam_domain::workspace.

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    -- The project whose repository is checked out (no foreign key: a
    -- project's deletion first deletes its workspaces, in code).
    project_id TEXT NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes(id),
    name TEXT NOT NULL,
    branch TEXT NOT NULL,
    runtime TEXT NOT NULL CHECK (runtime IN ('host', 'devcontainer')),
    status TEXT NOT NULL CHECK (status IN
        ('creating', 'running', 'stopping', 'stopped', 'error', 'deleting', 'deleted')),
    status_since INTEGER NOT NULL,
    error_message TEXT,
    -- Forwarded ports open without a port-access ticket.
    ports_public INTEGER NOT NULL DEFAULT 0 CHECK (ports_public IN (0, 1)),
    created_at INTEGER NOT NULL,
    ready_at INTEGER,
    updated_at INTEGER NOT NULL
);

CREATE INDEX workspaces_by_owner ON workspaces (user_id, created_at);
CREATE INDEX workspaces_by_node ON workspaces (node_id, status);
-- A name is unique among a node's workspaces that are not deleted.
CREATE UNIQUE INDEX workspaces_name_per_node ON workspaces (node_id, name)
    WHERE status != 'deleted';

-- Each step of a workspace's creation as the vm-agent reports it.
CREATE TABLE workspace_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('started', 'done', 'failed')),
    detail TEXT
);

CREATE INDEX workspace_events_by_workspace ON workspace_events (workspace_id, seq);
