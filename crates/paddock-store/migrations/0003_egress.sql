-- Egress rules: per box or per project, an action for a destination.
-- `target` is an exact name, `*.suffix` or a CIDR; no ports means any port.
CREATE TABLE egress_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    scope      TEXT NOT NULL CHECK (scope IN ('box', 'project')),
    subject    TEXT NOT NULL,
    target     TEXT NOT NULL,
    port_lo    INTEGER,
    port_hi    INTEGER,
    action     TEXT NOT NULL CHECK (action IN ('allow', 'deny', 'ask')),
    expires_at INTEGER,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX egress_rules_key
    ON egress_rules (scope, subject, target, IFNULL(port_lo, -1), IFNULL(port_hi, -1));

-- Every egress decision, in the order taken.
CREATE TABLE egress_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    box_id     TEXT NOT NULL,
    project    TEXT NOT NULL,
    dest       TEXT NOT NULL,
    port       INTEGER NOT NULL,
    proto      INTEGER NOT NULL,
    domain     TEXT NOT NULL,
    decision   TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    request_id TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX egress_audit_box ON egress_audit (box_id, id);

-- A box's shield when it is not simply up; `until` ends a lowered shield.
CREATE TABLE egress_shield (
    box_id TEXT PRIMARY KEY REFERENCES boxes(id) ON DELETE CASCADE,
    state  TEXT NOT NULL CHECK (state IN ('down', 'block')),
    until  INTEGER
);
