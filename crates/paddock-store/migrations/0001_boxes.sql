-- Boxes are journalled here *before* any Docker object exists and deleted only
-- after every Docker object is gone, so a crash at any point leaves a row that
-- tells the next start what to finish (see paddock-core's reconcile).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE boxes (
    id           TEXT PRIMARY KEY,
    project      TEXT NOT NULL,
    image        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL,
    container_id TEXT,
    network_id   TEXT,
    error        TEXT,
    hook_state   TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE INDEX boxes_project ON boxes(project);

-- Only the SHA-256 of an activation token is kept: the token itself is a
-- bearer secret for the activation page.
CREATE TABLE activations (
    token_hash TEXT PRIMARY KEY,
    box_id     TEXT NOT NULL UNIQUE REFERENCES boxes(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
);
