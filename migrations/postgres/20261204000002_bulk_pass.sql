-- Bulk API 2.0 passes (issue 16): a direction pass that reads through a Bulk query job also
-- looks its rows up in a staged copy of the target's records and writes them through ingest
-- jobs of the whole pass, not of each page. Everything a kill -9 must find again is here:
-- the target records staged for the lookups, the writes planned and waiting for their job,
-- and each written row's result. Every row belongs to the pass's read job (bulk_jobs.job_id)
-- and goes when the job ends. Portable SQL (SQLite and PostgreSQL).

-- The first seq of the results page being staged (NULL: none): a page read again after a
-- crash first drops the rows it had staged.
ALTER TABLE bulk_jobs ADD COLUMN page_start BIGINT;

CREATE TABLE bulk_targets (
    job_id      TEXT COLLATE "C" NOT NULL,
    record_id   TEXT COLLATE "C" NOT NULL,
    -- The value of sync.external_id_field, and the match key (sync.match_by values, text
    -- lower-cased, as a JSON array), for the lookups of unlinked rows.
    external_id TEXT COLLATE "C",
    match_key   TEXT COLLATE "C",
    -- The target record as the REST API would have returned it: a JSON object.
    record      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (job_id, record_id)
);

CREATE INDEX bulk_targets_external_id ON bulk_targets (job_id, external_id);
CREATE INDEX bulk_targets_match_key ON bulk_targets (job_id, match_key);

CREATE TABLE bulk_pending (
    job_id    TEXT COLLATE "C" NOT NULL,
    -- Planning order (pages commit in order, so seq follows the feed).
    seq       BIGINT NOT NULL,
    -- update (by Id) or upsert (on the external id), and the key its result is matched by.
    operation TEXT COLLATE "C" NOT NULL,
    write_key TEXT COLLATE "C" NOT NULL,
    -- The row as its commit needs it: a JSON object (sync::bulk_pass::PendingRow).
    pending   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE INDEX bulk_pending_operation ON bulk_pending (job_id, operation, seq);

CREATE TABLE bulk_results (
    job_id        TEXT COLLATE "C" NOT NULL,
    operation     TEXT COLLATE "C" NOT NULL,
    write_key     TEXT COLLATE "C" NOT NULL,
    -- written: the record's id and whether it was created; failed: the error; unprocessed.
    outcome       TEXT COLLATE "C" NOT NULL,
    target_id     TEXT COLLATE "C",
    created       BIGINT NOT NULL DEFAULT 0,
    error_code    TEXT COLLATE "C",
    error_message TEXT COLLATE "C",
    PRIMARY KEY (job_id, operation, write_key)
);
