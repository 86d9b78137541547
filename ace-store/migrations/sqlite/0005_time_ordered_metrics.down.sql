DROP INDEX IF EXISTS idx_ace_metrics_created;
CREATE INDEX idx_ace_metrics_agent_created ON ace_performance_metrics (agent_id, created_at DESC);
CREATE INDEX idx_ace_metrics_stage_created ON ace_performance_metrics (stage, created_at DESC);
