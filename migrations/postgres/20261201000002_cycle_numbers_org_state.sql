-- PostgreSQL form of ../20261201000002_cycle_numbers_org_state.sql: both direction rows of one
-- cycle share its number; `linked` and `conflicts` are counted on their own; org_state keeps a
-- login refused for its credentials for `status`.
ALTER TABLE cycles ADD COLUMN cycle BIGINT;
ALTER TABLE cycles ADD COLUMN linked BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cycles ADD COLUMN conflicts BIGINT NOT NULL DEFAULT 0;
UPDATE cycles SET cycle = id;
CREATE INDEX cycles_cycle ON cycles (cycle);

CREATE TABLE org_state (
    org               TEXT COLLATE "C" PRIMARY KEY CHECK (org IN ('a', 'b')),
    auth_code         TEXT COLLATE "C",
    auth_message      TEXT COLLATE "C",
    auth_attempts     BIGINT NOT NULL DEFAULT 0,
    auth_since        TEXT COLLATE "C",
    auth_next_attempt TEXT COLLATE "C",
    updated_at        TEXT COLLATE "C" NOT NULL
);
