-- A box's credential for its project's repository at the git gate. Only the
-- hash is kept; the row goes with the box, which is what revokes it.
CREATE TABLE git_tokens (
    token_hash TEXT PRIMARY KEY,
    box_id     TEXT NOT NULL UNIQUE REFERENCES boxes(id) ON DELETE CASCADE,
    project    TEXT NOT NULL
);
