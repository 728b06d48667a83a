-- Facts about how the catalog was built, checked each time it is opened (e.g. shard_count: the number of
-- partitions its files.shard values were computed for; see catalog/shard_layout.py).
CREATE TABLE catalog_settings (
    name           TEXT PRIMARY KEY,
    value          TEXT NOT NULL
);
