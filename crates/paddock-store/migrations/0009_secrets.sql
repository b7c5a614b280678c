-- Secrets a project's boxes use without ever holding them: the value is
-- sealed (an AEAD under a key kept outside the database, its project and
-- name bound in as associated data, so a sealed value moved to another
-- row does not open). `env` is the variable a box of the project finds
-- its placeholder in; `bindings` (JSON) says which hosts get the value
-- and how. Nothing here can give the value back unsealed.
CREATE TABLE secrets (
    project       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    env           TEXT,
    bindings      TEXT    NOT NULL DEFAULT '[]',
    nonce         BLOB    NOT NULL,
    sealed        BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_used_ms  INTEGER,
    PRIMARY KEY (project, name)
);
