-- Each box network gets its own subnet from paddock's pool, so the number of
-- boxes is not bounded by Docker's small default address pools. The unique
-- index is what settles two creates picking the same subnet at once.
ALTER TABLE boxes ADD COLUMN subnet TEXT;
CREATE UNIQUE INDEX boxes_subnet ON boxes(subnet) WHERE subnet IS NOT NULL;
