-- Reconcile (issue 14): a live link whose record is missing from one org's filtered read is
-- looked up in that org by Id without sync.filter; a live record found so is staged with
-- outside_filter = 1 (it left the filter; it was not deleted) and compared like a linked
-- pair, and the comparisons that stand for the filtered read (records read, ambiguous keys)
-- leave such rows out.
ALTER TABLE reconcile_rows ADD COLUMN outside_filter INTEGER NOT NULL DEFAULT 0
    CHECK (outside_filter IN (0, 1));
