-- Each failure gets its class (transient | needs_edit | needs_operator), which decides how it
-- is retried, and the values that were sent to the target (JSON, when a write was tried). The
-- state gains `waiting`: a needs_edit failure waits for an edit of its source record (or an
-- operator's retry), never for a timer. SQLite cannot change a CHECK constraint in place, so
-- the table is rebuilt with the same columns, rows and ids.
CREATE TABLE failures_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    direction       TEXT NOT NULL CHECK (direction IN ('a_to_b', 'b_to_a')),
    object          TEXT NOT NULL,
    source_id       TEXT NOT NULL,
    target_id       TEXT,
    source_modstamp TEXT,
    error_code      TEXT NOT NULL,
    message         TEXT NOT NULL,
    class           TEXT NOT NULL CHECK (class IN ('transient', 'needs_edit', 'needs_operator')),
    -- The record as written to the target (a JSON object); NULL when no write was tried.
    sent            TEXT,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    -- When the next retry is due; NULL when waiting or dead.
    next_attempt_at TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'waiting', 'dead')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (direction, object, source_id)
) STRICT;

-- Old rows: a pending row was retryable, so transient. A dead row gets the class of its code
-- (a snapshot of FailureClass::of_code in src/store/types.rs; unknown codes are needs_edit),
-- and a dead needs_edit row now waits for an edit instead.
INSERT INTO failures_new (id, direction, object, source_id, target_id, source_modstamp,
                          error_code, message, class, sent, attempts, next_attempt_at, state,
                          created_at, updated_at)
SELECT id, direction, object, source_id, target_id, source_modstamp, error_code, message,
       class, NULL, attempts, next_attempt_at,
       CASE WHEN state = 'dead' AND class = 'needs_edit' THEN 'waiting' ELSE state END,
       created_at, updated_at
FROM (
    SELECT *,
           CASE
               WHEN state = 'pending' THEN 'transient'
               WHEN error_code IN ('UNABLE_TO_LOCK_ROW', 'SERVER_UNAVAILABLE', 'SERVER_ERROR',
                                   'BAD_GATEWAY', 'GATEWAY_TIMEOUT', 'REQUEST_RUNNING_TOO_LONG',
                                   'UNKNOWN_EXCEPTION', 'TIMEOUT', 'CONNECTION_FAILED',
                                   'BAD_RESPONSE', 'HTTP_ERROR', 'TOO_MANY_REQUESTS',
                                   'REQUEST_LIMIT_EXCEEDED', 'API_BUDGET_EXCEEDED',
                                   'INVALID_SESSION_ID', 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
                                   'NO_RESULT', 'ACCOUNT_UNRESOLVED')
                   THEN 'transient'
               WHEN error_code IN ('AMBIGUOUS_MATCH', 'AMBIGUOUS_ACCOUNT', 'LINKED_TARGET_MISSING',
                                   'LINK_CONFLICT', 'ENTITY_IS_DELETED',
                                   'INVALID_CROSS_REFERENCE_KEY', 'DUPLICATE_EXTERNAL_ID',
                                   'INVALID_ID_FIELD', 'ENTITY_IS_LOCKED', 'INVALID_FIELD',
                                   'INVALID_FIELD_FOR_INSERT_UPDATE', 'INVALID_TYPE',
                                   'MALFORMED_QUERY', 'INVALID_QUERY_FILTER_OPERATOR',
                                   'NOT_FOUND', 'FORBIDDEN', 'API_DISABLED_FOR_ORG',
                                   'API_CURRENTLY_DISABLED')
                    OR error_code LIKE 'INSUFFICIENT\_ACCESS%' ESCAPE '\'
                   THEN 'needs_operator'
               ELSE 'needs_edit'
           END AS class
    FROM failures
);

DROP TABLE failures;
ALTER TABLE failures_new RENAME TO failures;
CREATE INDEX failures_due ON failures (state, direction, object, next_attempt_at);
CREATE INDEX failures_code ON failures (error_code);
