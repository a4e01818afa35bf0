-- Text the chat can be searched by: session titles, the user's prompts and
-- each turn's agent text. Full-text search uses an FTS5 table created in
-- code when the storage has FTS5; this plain table is the fallback (LIKE).
CREATE TABLE search_plain (
    session_id TEXT NOT NULL,
    body TEXT NOT NULL
);

CREATE INDEX search_plain_by_session ON search_plain (session_id);
