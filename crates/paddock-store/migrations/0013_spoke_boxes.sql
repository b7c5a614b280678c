-- Boxes this hub placed on spokes. The spoke holds the box (its container,
-- network, gateway and its own row); the hub keeps which spoke it is on,
-- whose project it is (what IAM and the clearance events go by, never
-- what a spoke says), and the last view the spoke gave of it, shown while
-- the spoke is unreachable. A row is written before the spoke is asked to
-- make the box and removed only once the spoke has destroyed it (or says
-- it never had it), so no box on a spoke is without its row here.
CREATE TABLE spoke_boxes (
    id            TEXT PRIMARY KEY,
    spoke         TEXT NOT NULL,
    project       TEXT NOT NULL,
    view_json     TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX spoke_boxes_by_spoke ON spoke_boxes (spoke);
