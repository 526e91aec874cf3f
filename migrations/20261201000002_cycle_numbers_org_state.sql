-- A cycle is A->B then B->A (README): both direction rows of one cycle share its number, and
-- so do the log lines of both passes. Rows from before this migration keep their id as their
-- number. `linked` and `conflicts` were folded into `skipped` (or not kept); they are counted
-- on their own from now on.
ALTER TABLE cycles ADD COLUMN cycle INTEGER;
ALTER TABLE cycles ADD COLUMN linked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cycles ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
UPDATE cycles SET cycle = id;
CREATE INDEX cycles_cycle ON cycles (cycle);

-- What the daemon knows of each org that `status` (another process) must show: a login
-- refused for its credentials, with Salesforce's code and message, until a login succeeds.
CREATE TABLE org_state (
    org               TEXT PRIMARY KEY CHECK (org IN ('a', 'b')),
    auth_code         TEXT,
    auth_message      TEXT,
    auth_attempts     INTEGER NOT NULL DEFAULT 0,
    auth_since        TEXT,
    auth_next_attempt TEXT,
    updated_at        TEXT NOT NULL
) STRICT;
