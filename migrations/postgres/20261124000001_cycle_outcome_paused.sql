-- PostgreSQL form of ../20261124000001_cycle_outcome_paused.sql: a direction paused by an
-- org's API limit or budget gets its own outcome, `paused`. PostgreSQL changes the CHECK in
-- place (no table rebuild).
ALTER TABLE cycles DROP CONSTRAINT cycles_outcome_check;
UPDATE cycles SET outcome = 'paused' WHERE outcome = 'failed' AND error LIKE 'paused:%';
ALTER TABLE cycles ADD CONSTRAINT cycles_outcome_check
    CHECK (outcome IN ('running', 'ok', 'partial', 'failed', 'interrupted', 'paused'));
