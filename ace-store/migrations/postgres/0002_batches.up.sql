-- ace PostgreSQL schema v2: the digest of every batch stored, written in the batch's own
-- transaction, so a batch sent again after its commit's reply was lost is not stored twice.
-- Rows older than the retention window go with the records (PgStore::retain).
CREATE TABLE ace_batches (
    digest      BYTEA  PRIMARY KEY,
    created_at  BIGINT NOT NULL
);
CREATE INDEX idx_ace_batches_created ON ace_batches (created_at);
