-- How far each audit export sink has got through the decision log: the
-- id of the last entry it has delivered. A sink goes on after it on every
-- start, so nothing is skipped across restarts (an entry delivered just
-- before a crash may be delivered again: receivers drop it by its id).
CREATE TABLE audit_export_cursors (
    sink    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
