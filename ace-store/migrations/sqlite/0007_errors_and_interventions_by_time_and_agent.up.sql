-- ace schema v7: errors and interventions are indexed as v6 indexes metrics, by time then agent.
-- Their indexes led by agent_id took each record into one of 10,000 places spread over the file,
-- so the pages a batch dirtied, and the bytes written a record, grew with the table. Time first,
-- every record goes in at the index's end; a query by agent over a time range searches the
-- range and tests the agent in the index, reading from the table only that agent's rows, and
-- retention finds the old rows through the index instead of scanning the table. The errors'
-- index on (severity, created_at) stays: four severities make four places to write, not one
-- per agent (timed in docs/benchmarks.md).
DROP INDEX IF EXISTS idx_ace_errors_agent_created;
CREATE INDEX idx_ace_errors_created_agent ON ace_errors (created_at, agent_id);
DROP INDEX IF EXISTS idx_ace_interventions_agent_created;
CREATE INDEX idx_ace_interventions_created_agent ON ace_interventions (created_at, agent_id);
