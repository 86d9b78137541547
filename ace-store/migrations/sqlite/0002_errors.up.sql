-- ace schema v2: errors and their patterns.
-- Times are microseconds since the Unix epoch (engine clock); pattern ids are 16 hex digits.
CREATE TABLE ace_errors (
    id          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    agent_id    TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    pattern_id  TEXT    NOT NULL
);
CREATE INDEX idx_ace_errors_severity_created ON ace_errors (severity, created_at DESC);
CREATE INDEX idx_ace_errors_agent_created ON ace_errors (agent_id, created_at DESC);

CREATE TABLE ace_error_patterns (
    kind        TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    pattern_id  TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (kind, template)
) WITHOUT ROWID;
