-- Cluster ids are never reused: a re-cluster deletes clusters and creates new ones, and SQLite
-- would hand a deleted top id to the next row, so a client still holding "cluster 8" would name
-- or merge a different group of faces. New ids come from this counter (see clusters.rs).
CREATE TABLE id_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO id_counters (name, value) VALUES ('clusters', COALESCE((SELECT MAX(id) FROM clusters), 0));
