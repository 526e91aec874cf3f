-- PostgreSQL form of ../20261201000001_failure_class.sql: each failure gets its class
-- (transient | needs_edit | needs_operator) and the values that were sent to the target (JSON,
-- when a write was tried); the state gains `waiting`. A PostgreSQL state starts at this schema
-- (`orgsync state migrate` copies rows already converted by SQLite), so only rows written
-- before this file existed need a class: they are classified as the SQLite file does.
ALTER TABLE failures ADD COLUMN class TEXT COLLATE "C";
ALTER TABLE failures ADD COLUMN sent TEXT COLLATE "C";
UPDATE failures SET class = CASE
    WHEN state = 'pending' THEN 'transient'
    WHEN error_code IN ('UNABLE_TO_LOCK_ROW', 'SERVER_UNAVAILABLE', 'SERVER_ERROR',
                        'BAD_GATEWAY', 'GATEWAY_TIMEOUT', 'REQUEST_RUNNING_TOO_LONG',
                        'UNKNOWN_EXCEPTION', 'TIMEOUT', 'CONNECTION_FAILED', 'BAD_RESPONSE',
                        'HTTP_ERROR', 'TOO_MANY_REQUESTS', 'REQUEST_LIMIT_EXCEEDED',
                        'API_BUDGET_EXCEEDED', 'INVALID_SESSION_ID',
                        'ALL_OR_NONE_OPERATION_ROLLED_BACK', 'NO_RESULT', 'ACCOUNT_UNRESOLVED')
        THEN 'transient'
    WHEN error_code IN ('AMBIGUOUS_MATCH', 'AMBIGUOUS_ACCOUNT', 'LINKED_TARGET_MISSING',
                        'LINK_CONFLICT', 'ENTITY_IS_DELETED', 'INVALID_CROSS_REFERENCE_KEY',
                        'DUPLICATE_EXTERNAL_ID', 'INVALID_ID_FIELD', 'ENTITY_IS_LOCKED',
                        'INVALID_FIELD', 'INVALID_FIELD_FOR_INSERT_UPDATE', 'INVALID_TYPE',
                        'MALFORMED_QUERY', 'INVALID_QUERY_FILTER_OPERATOR', 'NOT_FOUND',
                        'FORBIDDEN', 'API_DISABLED_FOR_ORG', 'API_CURRENTLY_DISABLED')
         OR error_code LIKE 'INSUFFICIENT\_ACCESS%' ESCAPE '\'
        THEN 'needs_operator'
    ELSE 'needs_edit'
END;
ALTER TABLE failures DROP CONSTRAINT failures_state_check;
UPDATE failures SET state = 'waiting' WHERE state = 'dead' AND class = 'needs_edit';
ALTER TABLE failures ALTER COLUMN class SET NOT NULL;
ALTER TABLE failures ADD CONSTRAINT failures_class_check
    CHECK (class IN ('transient', 'needs_edit', 'needs_operator'));
ALTER TABLE failures ADD CONSTRAINT failures_state_check
    CHECK (state IN ('pending', 'waiting', 'dead'));
CREATE INDEX failures_code ON failures (error_code);
