-- Reconcile (issue 14): `orgsync reconcile` reads both orgs' filtered records in full into
-- reconcile_rows (one row per record and run; a run's rows are deleted when the next run
-- starts), compares them in SQL with links, and keeps its report in reconcile_reports (the
-- last one only). Portable SQL (SQLite and PostgreSQL): timestamps are the store's
-- fixed-width UTC text, JSON is stored as text.
CREATE TABLE reconcile_rows (
    run_id           TEXT COLLATE "C" NOT NULL,
    -- 'a' or 'b'.
    org              TEXT COLLATE "C" NOT NULL CHECK (org IN ('a', 'b')),
    record_id        TEXT COLLATE "C" NOT NULL,
    system_modstamp  TEXT COLLATE "C",
    last_modified    TEXT COLLATE "C",
    last_modified_by TEXT COLLATE "C",
    -- The match key (sync.match_by) normalized as the matcher compares it (text lowercased,
    -- numbers normalized): a JSON array; NULL when a key field is empty or there is no key.
    match_key        TEXT COLLATE "C",
    -- The mapped values in canonical form (A's names and values after renames and value
    -- maps, no nulls): a JSON object with sorted keys.
    vals             TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, org, record_id)
);

CREATE INDEX reconcile_rows_key ON reconcile_rows (run_id, org, match_key);

CREATE TABLE reconcile_reports (
    run_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    object      TEXT COLLATE "C" NOT NULL,
    started_at  TEXT COLLATE "C" NOT NULL,
    finished_at TEXT COLLATE "C" NOT NULL,
    -- Differences found, all classes together.
    differences BIGINT NOT NULL,
    -- The whole report as `orgsync reconcile --json` prints it.
    report      TEXT COLLATE "C" NOT NULL
);
