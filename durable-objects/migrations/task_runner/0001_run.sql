-- One task's run: its D1 row as last mirrored, the state machine's record,
-- and what the runner is waiting for (a booting node, a workspace being
-- created), each as JSON.
CREATE TABLE run (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    task TEXT NOT NULL,
    run TEXT NOT NULL,
    pending TEXT
);
