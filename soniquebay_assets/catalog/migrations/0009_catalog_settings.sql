-- Facts about how the catalog was built, checked each time it is opened (catalog/build_settings.py):
-- shard_count, the number of partitions its files.shard values were computed for; tag_rules_version, the
-- version of the tag value rules its raw_tags were read with.
CREATE TABLE catalog_settings (
    name           TEXT PRIMARY KEY,
    value          TEXT NOT NULL
);
