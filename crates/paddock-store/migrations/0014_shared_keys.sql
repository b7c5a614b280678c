-- Keys every hub on one database must hold alike, sealed as secrets are
-- (under the secrets key, which those hubs share): the egress CA, so a
-- box made at one hub trusts what another hub's gateway shows it after a
-- takeover. The certificate is public and kept in the clear. Written for
-- SQLite and PostgreSQL alike.
CREATE TABLE shared_keys (
    name          TEXT   NOT NULL PRIMARY KEY,
    certificate   TEXT   NOT NULL,
    nonce         BYTEA  NOT NULL,
    sealed        BYTEA  NOT NULL,
    created_at_ms BIGINT NOT NULL
);
