-- Leadership of a sync pair (issue 15, part 2): one row per lease (name 'sync': the replica that
-- syncs, drains the inbox and retries failures). Taken with a conditional upsert when expired;
-- every take increments `epoch`, the fencing token that each page commit checks in its own
-- transaction. Times are the database's clock in store::time's format.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    epoch       INTEGER NOT NULL CHECK (epoch >= 1),
    acquired_at TEXT NOT NULL,
    renewed_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;
