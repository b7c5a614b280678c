-- PostgreSQL: the schema SQLite reaches at its migration 13, in one step
-- (a PostgreSQL store starts at 13; later migrations are written for
-- both). Integers are BIGINT throughout (paddock's are i64), booleans are
-- 0/1 as in SQLite, and an AUTOINCREMENT id is an identity column: ids
-- still only grow, which the audit log's cursors rely on. What each table
-- means is said in the SQLite migrations.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE boxes (
    id             TEXT PRIMARY KEY,
    project        TEXT NOT NULL,
    image          TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,
    container_id   TEXT,
    network_id     TEXT,
    error          TEXT,
    hook_state     TEXT NOT NULL DEFAULT '{}',
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    exit_code      BIGINT,
    expires_at_ms  BIGINT,
    active_at_ms   BIGINT,
    runtime        TEXT,
    read_only      BIGINT NOT NULL DEFAULT 0,
    container_name TEXT,
    warm           BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX boxes_project ON boxes(project);

CREATE TABLE activations (
    token_hash    TEXT PRIMARY KEY,
    box_id        TEXT NOT NULL UNIQUE REFERENCES boxes(id) ON DELETE CASCADE,
    expires_at_ms BIGINT NOT NULL,
    used          BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE git_tokens (
    token_hash TEXT PRIMARY KEY,
    box_id     TEXT NOT NULL UNIQUE REFERENCES boxes(id) ON DELETE CASCADE,
    project    TEXT NOT NULL
);

CREATE TABLE egress_rules (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope         TEXT NOT NULL CHECK (scope IN ('box', 'project')),
    subject       TEXT NOT NULL,
    target        TEXT NOT NULL,
    port_lo       BIGINT,
    port_hi       BIGINT,
    action        TEXT NOT NULL CHECK (action IN ('allow', 'deny', 'ask')),
    expires_at_ms BIGINT,
    created_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX egress_rules_key
    ON egress_rules (scope, subject, target, COALESCE(port_lo, -1), COALESCE(port_hi, -1));

CREATE TABLE egress_audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    box_id     TEXT NOT NULL,
    project    TEXT NOT NULL,
    dest       TEXT NOT NULL,
    port       BIGINT NOT NULL,
    proto      BIGINT NOT NULL,
    domain     TEXT NOT NULL,
    decision   TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    request_id TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX egress_audit_box ON egress_audit (box_id, id);

CREATE TABLE egress_shield (
    box_id   TEXT PRIMARY KEY REFERENCES boxes(id) ON DELETE CASCADE,
    state    TEXT NOT NULL CHECK (state IN ('down', 'block')),
    until_ms BIGINT
);

CREATE TABLE api_tokens (
    id               TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    capabilities     TEXT NOT NULL,
    projects         TEXT,
    created_at_secs  BIGINT NOT NULL,
    expires_at_secs  BIGINT,
    revoked_at_secs  BIGINT,
    mcp_seen_at_secs BIGINT
);

CREATE TABLE box_ports (
    box_id        TEXT NOT NULL REFERENCES boxes(id) ON DELETE CASCADE,
    port          BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (box_id, port)
);

CREATE TABLE secrets (
    project       TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    env           TEXT,
    bindings      TEXT   NOT NULL DEFAULT '[]',
    nonce         BYTEA  NOT NULL,
    sealed        BYTEA  NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    last_used_ms  BIGINT,
    PRIMARY KEY (project, name)
);

CREATE TABLE egress_http_rules (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope         TEXT NOT NULL CHECK (scope IN ('box', 'project')),
    subject       TEXT NOT NULL,
    host          TEXT NOT NULL,
    port          BIGINT,
    methods       TEXT NOT NULL,
    path          TEXT NOT NULL,
    refs          TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('allow', 'deny', 'ask')),
    expires_at_ms BIGINT,
    created_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX egress_http_rules_key
    ON egress_http_rules (scope, subject, host, COALESCE(port, -1), methods, path, refs);

CREATE TABLE audit_export_cursors (
    sink    TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);

CREATE TABLE spoke_tokens (
    token_hash      TEXT PRIMARY KEY,
    spoke           TEXT NOT NULL,
    created_at_secs BIGINT NOT NULL,
    expires_at_secs BIGINT NOT NULL
);

CREATE TABLE spokes (
    name                TEXT PRIMARY KEY,
    enrolled_at_secs    BIGINT NOT NULL,
    cert_serial         TEXT NOT NULL,
    cert_not_after_secs BIGINT NOT NULL,
    revoked_at_secs     BIGINT
);

CREATE TABLE spoke_boxes (
    id            TEXT PRIMARY KEY,
    spoke         TEXT NOT NULL,
    project       TEXT NOT NULL,
    view_json     TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX spoke_boxes_by_spoke ON spoke_boxes (spoke);
