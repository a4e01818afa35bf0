-- The node this object times: the alarm acts on it in D1. (The `lifecycle`
-- row of 0001 predates the state machine in D1 and is no longer written.)
CREATE TABLE IF NOT EXISTS timed_node (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    node_id TEXT NOT NULL
);
