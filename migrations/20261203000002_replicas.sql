-- Replicas of a pair seen recently (issue 15, part 2): each daemon on PostgreSQL upserts its row
-- at every lease round (a third of ha.lease_ttl), so `status` lists the standbys beside the
-- lease's holder. Rows not seen for a day are deleted by the same upsert. Times are the
-- database's clock in store::time's format.
CREATE TABLE replicas (
    holder  TEXT PRIMARY KEY,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    role    TEXT NOT NULL CHECK (role IN ('leader', 'standby')),
    seen_at TEXT NOT NULL
) STRICT;
