DROP INDEX IF EXISTS idx_ace_metrics_created_agent;
CREATE INDEX idx_ace_metrics_created ON ace_performance_metrics (created_at);
