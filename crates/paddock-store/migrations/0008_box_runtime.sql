-- How a box was made beyond its image: the OCI runtime Docker runs it with
-- (NULL: the engine's default) and whether its root filesystem is
-- read-only (a writable workspace volume beside it). Kept so a listing
-- says so and a restart treats the box as it was made.
ALTER TABLE boxes ADD COLUMN runtime TEXT;
ALTER TABLE boxes ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;

-- The container's name, which carries the instance so two paddocks on one
-- engine never claim the same name (NULL: a box made before, named
-- paddock-<id>).
ALTER TABLE boxes ADD COLUMN container_name TEXT;

-- A box made ahead for a warm pool: complete (labels, environment, guards)
-- but not yet anybody's; a create for its project and image claims it.
ALTER TABLE boxes ADD COLUMN warm INTEGER NOT NULL DEFAULT 0;
