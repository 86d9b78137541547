DROP TABLE IF EXISTS ace_playbook_versions;
DROP TABLE IF EXISTS ace_agent_context;
DROP TABLE IF EXISTS ace_interventions;
DROP TABLE IF EXISTS ace_error_patterns;
DROP TABLE IF EXISTS ace_errors;
DROP TABLE IF EXISTS ace_baselines;
DROP TABLE IF EXISTS ace_performance_metrics;
