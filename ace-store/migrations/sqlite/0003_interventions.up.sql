-- ace schema v3: interventions, for audit, with their reported outcomes.
CREATE TABLE ace_interventions (
    id               INTEGER PRIMARY KEY,
    intervention_id  TEXT    NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    agent_id         TEXT    NOT NULL,
    task_id          TEXT    NOT NULL,
    strategy         TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    signal_kind      TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    signals          TEXT    NOT NULL,
    outcome          INTEGER,
    outcome_at       INTEGER
);
CREATE INDEX idx_ace_interventions_agent_created ON ace_interventions (agent_id, created_at DESC);
