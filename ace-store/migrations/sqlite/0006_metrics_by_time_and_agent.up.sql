-- ace schema v6: the metrics' time index carries the agent too. Records still go in at its end
-- (time first), so a write costs what it cost with v5's index on time alone, whatever the size
-- of the table; a query by agent over a time range now tests each record's agent in the index
-- and reads from the table only that agent's rows (v5 read every row of the range). The index
-- takes about 13 bytes a record more (timed in docs/benchmarks.md).
DROP INDEX IF EXISTS idx_ace_metrics_created;
CREATE INDEX idx_ace_metrics_created_agent ON ace_performance_metrics (created_at, agent_id);
