-- Egress rules at the HTTP level, for hosts the gateway reads: per box or
-- per project, an action for requests to a host (an exact name or
-- `*.suffix`, a port or any) whose method is one of `methods` (empty:
-- any) and whose path matches the glob `path`; `refs` (empty: none)
-- narrows a git push to the refs it updates.
CREATE TABLE egress_http_rules (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    scope         TEXT NOT NULL CHECK (scope IN ('box', 'project')),
    subject       TEXT NOT NULL,
    host          TEXT NOT NULL,
    port          INTEGER,
    methods       TEXT NOT NULL,
    path          TEXT NOT NULL,
    refs          TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('allow', 'deny', 'ask')),
    expires_at_ms INTEGER,
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX egress_http_rules_key
    ON egress_http_rules (scope, subject, host, IFNULL(port, -1), methods, path, refs);
