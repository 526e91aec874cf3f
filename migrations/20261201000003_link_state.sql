-- A link gets a state (issue 13): `live` (synced, as every link was before), `unlinked` (an
-- operator ran `orgsync links unlink`: the two records are no longer synced with each other
-- and are never matched with each other again) or `tombstone` (one side was deleted: kept,
-- with when and by which side, so that the pair is never rematched and our own deletes are
-- recognised). Uniqueness on both sides holds among live links only (partial indexes), so a
-- record of an unlinked or tombstoned pair can be linked to another record; one row per pair.
-- Each link gets an id, for `orgsync links show/unlink`. SQLite cannot change a primary key
-- in place, so the table is rebuilt; existing rows become `live`.
CREATE TABLE links_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    object     TEXT NOT NULL,
    a_id       TEXT NOT NULL,
    b_id       TEXT NOT NULL,
    -- SystemModstamp of each side as last seen (read or written) by orgsync.
    a_modstamp TEXT,
    b_modstamp TEXT,
    -- The mapped field values (named as in A) last synced: a JSON object.
    snapshot   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(snapshot)),
    state      TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'unlinked', 'tombstone')),
    -- For a tombstone: when, and which side's delete made it.
    deleted_at TEXT,
    deleted_by TEXT CHECK (deleted_by IN ('a', 'b')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK ((state = 'tombstone') = (deleted_at IS NOT NULL AND deleted_by IS NOT NULL)),
    UNIQUE (object, a_id, b_id)
) STRICT;

INSERT INTO links_new (object, a_id, b_id, a_modstamp, b_modstamp, snapshot, state, created_at,
                       updated_at)
SELECT object, a_id, b_id, a_modstamp, b_modstamp, snapshot, 'live', created_at, updated_at
FROM links ORDER BY created_at, object, a_id;

DROP TABLE links;
ALTER TABLE links_new RENAME TO links;
CREATE UNIQUE INDEX links_live_a ON links (object, a_id) WHERE state = 'live';
CREATE UNIQUE INDEX links_live_b ON links (object, b_id) WHERE state = 'live';
CREATE INDEX links_b ON links (object, b_id);
