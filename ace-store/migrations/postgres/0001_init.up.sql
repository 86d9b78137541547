-- ace PostgreSQL schema v1: every table of the SQLite schema v4, with the seeds' indexes.
-- Times are microseconds since the Unix epoch (engine clock), as in SQLite.
CREATE TABLE ace_performance_metrics (
    id          BIGSERIAL PRIMARY KEY,
    created_at  BIGINT           NOT NULL,
    agent_id    TEXT             NOT NULL,
    task_id     TEXT             NOT NULL,
    stage       TEXT             NOT NULL,
    duration_s  DOUBLE PRECISION,
    success     BOOLEAN,
    metrics     JSON
);
CREATE INDEX idx_ace_metrics_agent_created ON ace_performance_metrics (agent_id, created_at DESC);
CREATE INDEX idx_ace_metrics_stage_created ON ace_performance_metrics (stage, created_at DESC);

CREATE TABLE ace_baselines (
    agent_id    TEXT             NOT NULL,
    stage       TEXT             NOT NULL,
    metric      TEXT             NOT NULL,
    count       BIGINT           NOT NULL,
    mean        DOUBLE PRECISION NOT NULL,
    variance    DOUBLE PRECISION NOT NULL,
    recent      DOUBLE PRECISION NOT NULL,
    degraded    BOOLEAN          NOT NULL,
    updated_at  BIGINT           NOT NULL,
    PRIMARY KEY (agent_id, stage, metric)
);

CREATE TABLE ace_errors (
    id          BIGSERIAL PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    agent_id    TEXT   NOT NULL,
    task_id     TEXT   NOT NULL,
    stage       TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    message     TEXT   NOT NULL,
    severity    TEXT   NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    pattern_id  TEXT   NOT NULL
);
CREATE INDEX idx_ace_errors_severity_created ON ace_errors (severity, created_at DESC);
CREATE INDEX idx_ace_errors_agent_created ON ace_errors (agent_id, created_at DESC);

CREATE TABLE ace_error_patterns (
    kind        TEXT   NOT NULL,
    template    TEXT   NOT NULL,
    pattern_id  TEXT   NOT NULL,
    count       BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (kind, template)
);

CREATE TABLE ace_interventions (
    id               BIGSERIAL PRIMARY KEY,
    intervention_id  TEXT    NOT NULL UNIQUE,
    created_at       BIGINT  NOT NULL,
    agent_id         TEXT    NOT NULL,
    task_id          TEXT    NOT NULL,
    strategy         TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    signal_kind      TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    signals          TEXT    NOT NULL,
    outcome          BOOLEAN,
    outcome_at       BIGINT
);
CREATE INDEX idx_ace_interventions_agent_created ON ace_interventions (agent_id, created_at DESC);

CREATE TABLE ace_agent_context (
    agent_id      TEXT   PRIMARY KEY,
    refreshed_at  BIGINT NOT NULL,
    steps         BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE ace_playbook_versions (
    domain      TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    hash        TEXT    NOT NULL,
    snapshot    BOOLEAN NOT NULL,
    body        TEXT    NOT NULL,
    PRIMARY KEY (domain, version)
);
