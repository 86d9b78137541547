DROP INDEX IF EXISTS idx_ace_interventions_created_agent;
CREATE INDEX idx_ace_interventions_agent_created ON ace_interventions (agent_id, created_at DESC);
DROP INDEX IF EXISTS idx_ace_errors_created_agent;
CREATE INDEX idx_ace_errors_agent_created ON ace_errors (agent_id, created_at DESC);
