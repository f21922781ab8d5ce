-- Schema version 4: runs cannot collide and resumes cannot mislabel. A staged row names the file it was predicted
-- from (its name in the dataset, size and modification time), so a resume keeps it only while that file is
-- unchanged and re-addresses it when the folder's order changed. A running run records who holds it (PID, host,
-- the process's start time and since when), so a second run of the same model and dataset is refused while that
-- process lives and takes the run over once it is gone.
ALTER TABLE prediction_staging ADD COLUMN IF NOT EXISTS file_name VARCHAR;     -- images.file_name of the image
ALTER TABLE prediction_staging ADD COLUMN IF NOT EXISTS file_size BIGINT;      -- bytes, when it was read
ALTER TABLE prediction_staging ADD COLUMN IF NOT EXISTS file_mtime_ns BIGINT;  -- modification time, when it was read
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid INTEGER;                         -- the holding process
ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR;                        -- its host name
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid_start DOUBLE;                    -- its start (epoch s), NULL if unknown
ALTER TABLE runs ADD COLUMN IF NOT EXISTS held_since TIMESTAMP;                -- when it took the run
