-- Spokes: other machines that run boxes for this hub. A spoke enrols once
-- with a single-use token an admin minted for its name (only the token's
-- hash is kept), and is known afterwards by the client certificate it was
-- issued: the serial on record is the only one accepted for the name, so
-- enrolling again retires the previous certificate, and revoking the
-- spoke retires it outright.
CREATE TABLE spoke_tokens (
    token_hash      TEXT PRIMARY KEY,
    spoke           TEXT NOT NULL,
    created_at_secs INTEGER NOT NULL,
    expires_at_secs INTEGER NOT NULL
);

CREATE TABLE spokes (
    name                 TEXT PRIMARY KEY,
    enrolled_at_secs     INTEGER NOT NULL,
    cert_serial          TEXT NOT NULL,
    cert_not_after_secs  INTEGER NOT NULL,
    revoked_at_secs      INTEGER
);
