-- orgsync state, DESIGN §3. Timestamps are TEXT in one fixed UTC format with milliseconds,
-- 'YYYY-MM-DDTHH:MM:SS.sssZ', so that text order is time order (max() and < work on them).

-- How far each org's changes of an object have been read and given a durable outcome.
-- Only ever moves forward: the update is max(old, new).
CREATE TABLE watermarks (
    org        TEXT NOT NULL CHECK (org IN ('a', 'b')),
    object     TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org, object)
) STRICT;

-- A record in A and its counterpart in B. Unique on both sides: a record is linked to at most
-- one record in the other org. Also holds Account links (object = 'Account').
CREATE TABLE links (
    object     TEXT NOT NULL,
    a_id       TEXT NOT NULL,
    b_id       TEXT NOT NULL,
    -- SystemModstamp of each side as last seen (read or written) by orgsync.
    a_modstamp TEXT,
    b_modstamp TEXT,
    -- The mapped field values (named as in A) last synced: a JSON object.
    snapshot   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(snapshot)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (object, a_id),
    UNIQUE (object, b_id)
) STRICT;

-- Records that could not be written, retried with backoff, then 'dead' until an operator
-- retries or discards them. One row per source record and direction.
CREATE TABLE failures (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    direction       TEXT NOT NULL CHECK (direction IN ('a_to_b', 'b_to_a')),
    object          TEXT NOT NULL,
    source_id       TEXT NOT NULL,
    target_id       TEXT,
    source_modstamp TEXT,
    error_code      TEXT NOT NULL,
    message         TEXT NOT NULL,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    -- When the next retry is due; NULL once dead.
    next_attempt_at TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'dead')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (direction, object, source_id)
) STRICT;

CREATE INDEX failures_due ON failures (state, direction, object, next_attempt_at);

-- Outbound Messaging notifications, written and committed before the Ack; drained by the
-- worker. Salesforce redelivers messages, so notifications are deduplicated on their Id.
CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org             TEXT NOT NULL CHECK (org IN ('a', 'b')),
    notification_id TEXT NOT NULL,
    object          TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    processed_at    TEXT,
    UNIQUE (org, notification_id)
) STRICT;

CREATE INDEX inbox_pending ON inbox (org, processed_at, id);

-- One row per direction pass, for `status` and the operator.
CREATE TABLE cycles (
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
    outcome     TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'partial', 'failed', 'interrupted')),
    error       TEXT
) STRICT;

CREATE INDEX cycles_direction ON cycles (direction, id);
