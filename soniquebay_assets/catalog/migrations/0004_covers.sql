-- Artwork: one chosen picture per album or artist (files on disk, never bytes here) and a negative-result cache.

CREATE TABLE covers (
    cover_id       INTEGER PRIMARY KEY,
    entity_type    TEXT NOT NULL CHECK (entity_type IN ('album', 'artist')),
    entity_id      INTEGER NOT NULL,                -- albums.album_id or artists.artist_id
    source         TEXT NOT NULL,                   -- embedded, folder, coverartarchive, lastfm
    origin         TEXT NOT NULL DEFAULT '',        -- file path, path#APIC or URL (secrets redacted)
    path           TEXT NOT NULL,                   -- relative to <data dir>/covers, content-addressed
    sha256         TEXT NOT NULL,
    mime           TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    byte_size      INTEGER NOT NULL,
    thumbnails     TEXT NOT NULL DEFAULT '{}',      -- JSON {"150": relative path, "300": ..., "600": ...}
    fetched_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (entity_type, entity_id)
);
CREATE INDEX covers_sha256 ON covers(sha256);
CREATE INDEX covers_source ON covers(entity_type, source);

-- A source that found nothing (kind 'miss') or could not answer (kind 'failure') for an entity is not asked
-- again before expires_at.
CREATE TABLE cover_misses (
    entity_type    TEXT NOT NULL CHECK (entity_type IN ('album', 'artist')),
    entity_id      INTEGER NOT NULL,
    source         TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('miss', 'failure')),
    reason         TEXT NOT NULL,                   -- short, stable (not_found, timeout, rate_limited, ...)
    attempts       INTEGER NOT NULL DEFAULT 1,
    checked_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    PRIMARY KEY (entity_type, entity_id, source)
);
CREATE INDEX cover_misses_expiry ON cover_misses(entity_type, expires_at);

-- covers and cover_misses point at albums or artists by id; these keep them clean when an entity goes away.
CREATE TRIGGER covers_album_deleted AFTER DELETE ON albums BEGIN
    DELETE FROM covers WHERE entity_type = 'album' AND entity_id = OLD.album_id;
    DELETE FROM cover_misses WHERE entity_type = 'album' AND entity_id = OLD.album_id;
END;

CREATE TRIGGER covers_artist_deleted AFTER DELETE ON artists BEGIN
    DELETE FROM covers WHERE entity_type = 'artist' AND entity_id = OLD.artist_id;
    DELETE FROM cover_misses WHERE entity_type = 'artist' AND entity_id = OLD.artist_id;
END;
