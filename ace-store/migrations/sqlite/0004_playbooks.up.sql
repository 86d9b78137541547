-- ace schema v4: playbook logs (operations and snapshots per domain, chained by SHA-256).
CREATE TABLE ace_playbook_versions (
    domain      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    snapshot    INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    PRIMARY KEY (domain, version)
);
