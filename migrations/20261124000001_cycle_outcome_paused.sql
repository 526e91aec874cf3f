-- A direction paused by an org's API limit or budget gets its own outcome, `paused`, instead of
-- `failed`: nothing failed, the pass resumes next cycle. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with the same columns, rows and ids.
CREATE TABLE cycles_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    direction   TEXT NOT NULL CHECK (direction IN ('a_to_b', 'b_to_a')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    read        INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    api_calls   INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'partial', 'failed', 'interrupted', 'paused')),
    error       TEXT
) STRICT;

INSERT INTO cycles_new (id, direction, started_at, finished_at, read, created, updated, skipped,
                        failed, api_calls, outcome, error)
SELECT id, direction, started_at, finished_at, read, created, updated, skipped, failed,
       api_calls,
       CASE WHEN outcome = 'failed' AND error LIKE 'paused:%' THEN 'paused' ELSE outcome END,
       error
FROM cycles;

DROP TABLE cycles;
ALTER TABLE cycles_new RENAME TO cycles;
CREATE INDEX cycles_direction ON cycles (direction, id);
