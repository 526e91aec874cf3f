-- Bulk API 2.0 (issue 16). A direction pass that reads through a Bulk query job records the job
-- here before anything else, and stages its results in bulk_staging, so that a kill -9 at any
-- stage resumes: a job still running is polled again, results partly staged continue from the
-- stored locator, staged rows are fed to the page pipeline. A staged row is deleted in the
-- transaction of the page that records its outcome. Portable SQL (SQLite and PostgreSQL):
-- timestamps are the store's fixed-width UTC text.
CREATE TABLE bulk_jobs (
    job_id      TEXT NOT NULL PRIMARY KEY,
    -- The org the job runs in ('a' or 'b'), the object and the operation (query, update, upsert).
    org         TEXT NOT NULL,
    object      TEXT NOT NULL,
    operation   TEXT NOT NULL,
    -- The pass that runs it: direction ('a_to_b' or 'b_to_a') and the cycle that created it.
    direction   TEXT NOT NULL,
    cycle       BIGINT NOT NULL,
    -- running (created, not complete yet), staging (results being read), staged (every result
    -- row staged, being fed), completed, failed, aborted.
    state       TEXT NOT NULL,
    -- The locator of the next results page to read (NULL: the first page, or none left).
    locator     TEXT,
    -- Rows staged so far (the next row's seq), and rows the job moved in the end.
    rows_staged BIGINT NOT NULL DEFAULT 0,
    rows_moved  BIGINT NOT NULL DEFAULT 0,
    -- Why it failed or was aborted.
    error       TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT
);

CREATE INDEX bulk_jobs_open ON bulk_jobs (direction, object, state);

CREATE TABLE bulk_staging (
    job_id          TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    system_modstamp TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    -- The source row as the REST API would have returned it: a JSON object.
    record          TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE INDEX bulk_staging_order ON bulk_staging (job_id, system_modstamp, record_id);
