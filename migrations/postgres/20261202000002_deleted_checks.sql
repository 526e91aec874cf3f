-- The getDeleted safety net (issue 13): per org and object, where the next getDeleted window
-- starts (the last reply's latestDateCovered, minute granularity), when the last check ran
-- (the next is due `sync.deleted_check_frequency` later), and the holes seen: windows whose
-- start the delete log no longer reached (earliestDateAvailable later than the start), each
-- one a reason to run a reconcile. Portable SQL (SQLite and PostgreSQL): timestamps are the
-- store's fixed-width UTC text (src/store/time.rs).
CREATE TABLE deleted_checks (
    org             TEXT COLLATE "C" NOT NULL CHECK (org IN ('a', 'b')),
    object          TEXT COLLATE "C" NOT NULL,
    next_start      TEXT COLLATE "C" NOT NULL,
    last_checked_at TEXT COLLATE "C" NOT NULL,
    holes           BIGINT NOT NULL DEFAULT 0,
    -- The latest hole: when the check saw it, the start asked for, and the earliest date the
    -- log still had.
    last_hole_at       TEXT COLLATE "C",
    last_hole_start    TEXT COLLATE "C",
    last_hole_earliest TEXT COLLATE "C",
    updated_at      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org, object)
);
