DROP TABLE IF EXISTS ace_baselines;
DROP INDEX IF EXISTS idx_ace_metrics_stage_created;
DROP INDEX IF EXISTS idx_ace_metrics_agent_created;
DROP TABLE IF EXISTS ace_performance_metrics;
