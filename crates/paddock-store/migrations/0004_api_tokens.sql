-- Control-plane API tokens of the built-in IAM regime. Only the hash of a
-- token is kept; a revoked token keeps its row (so `token ls` can show it
-- and first start knows tokens were made before).
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    -- JSON array of capability names; ["*"] is every capability.
    capabilities TEXT NOT NULL,
    -- JSON array of project ids; NULL is every project.
    projects     TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);
