-- ace schema v1: performance metrics and baselines.
-- Times are microseconds since the Unix epoch (engine clock).
CREATE TABLE ace_performance_metrics (
    id          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    agent_id    TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    duration_s  REAL,
    success     INTEGER,
    metrics     TEXT
);
CREATE INDEX idx_ace_metrics_agent_created ON ace_performance_metrics (agent_id, created_at DESC);
CREATE INDEX idx_ace_metrics_stage_created ON ace_performance_metrics (stage, created_at DESC);

CREATE TABLE ace_baselines (
    agent_id    TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    metric      TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    mean        REAL    NOT NULL,
    variance    REAL    NOT NULL,
    recent      REAL    NOT NULL,
    degraded    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, stage, metric)
) WITHOUT ROWID;
