DROP TABLE IF EXISTS ace_interventions;
