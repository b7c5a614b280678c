-- A box's lifecycle past "ready": the main process's exit code once it has
-- ended (state 'exited'; NULL otherwise), the moment its time to live runs
-- out (NULL: none), and when it was last used (execs, logins, starts), which
-- the idle timeout counts from. Unix milliseconds.
ALTER TABLE boxes ADD COLUMN exit_code INTEGER;
ALTER TABLE boxes ADD COLUMN expires_at_ms INTEGER;
ALTER TABLE boxes ADD COLUMN active_at_ms INTEGER;
UPDATE boxes SET active_at_ms = updated_at_ms;

-- Ports of a box published through paddock's listener; gone with the box.
CREATE TABLE box_ports (
    box_id        TEXT NOT NULL REFERENCES boxes(id) ON DELETE CASCADE,
    port          INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (box_id, port)
);
