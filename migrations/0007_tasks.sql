-- Tasks: one message from project chat turned into a branch and a pull
-- request by an agent (see docs/tasks.md). The run itself (its state
-- machine, sam_domain::task) lives in the task's TaskRunner Durable
-- Object; this row mirrors it for lists and pages, and every status change
-- is logged below.

CREATE TABLE tasks (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    project_id TEXT NOT NULL,
    -- The chat session the agent's messages stream into (ProjectData).
    session_id TEXT NOT NULL UNIQUE,
    agent TEXT NOT NULL,
    title TEXT NOT NULL,
    branch TEXT NOT NULL,
    vm_size TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('queued', 'acquiring_node', 'creating_workspace', 'starting_agent', 'running',
         'finalizing', 'completed', 'failed', 'cancelled')),
    attempt INTEGER NOT NULL DEFAULT 1,
    failed_step TEXT,
    failure_reason TEXT,
    node_id TEXT,
    workspace_id TEXT,
    stop_reason TEXT,
    pr_url TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX tasks_by_project ON tasks (project_id, created_at);
CREATE INDEX tasks_by_owner ON tasks (user_id, created_at);

-- Every status change of a task, in order.
CREATE TABLE task_status_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);

CREATE INDEX task_status_log_by_task ON task_status_log (task_id, seq);
