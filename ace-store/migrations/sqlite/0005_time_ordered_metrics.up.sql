-- ace schema v5: metrics are an append-only time series. The two secondary indexes led by
-- agent_id and stage took each record into one of 10,000 (agent) and 4 (stage) places spread over
-- the file, so a batch dirtied a page per agent and SQLite wrote several kilobytes of pages per
-- record. One index in time order takes every record at its end. Queries by agent or stage
-- over a time range scan that range in time order (timed in docs/benchmarks.md).
DROP INDEX IF EXISTS idx_ace_metrics_agent_created;
DROP INDEX IF EXISTS idx_ace_metrics_stage_created;
CREATE INDEX idx_ace_metrics_created ON ace_performance_metrics (created_at);
