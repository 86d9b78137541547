DROP TABLE IF EXISTS ace_batches;
