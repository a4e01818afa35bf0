-- A project's chat: its agent sessions and every message they produced.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    task_id TEXT,
    -- The workspace whose vm-agent may deliver this session's messages.
    workspace_id TEXT,
    agent TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    -- Every message up to this sequence number is stored.
    acked_up_to INTEGER NOT NULL DEFAULT 0,
    acp_session_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Raw session updates as the vm-agent's outbox numbered them.
CREATE TABLE messages (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- What the user said: the task's message and follow-ups.
CREATE TABLE prompts (
    session_id TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, prompt_id)
);
