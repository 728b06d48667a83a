-- What online services (MusicBrainz, Last.fm, AcoustID) said about albums, artists and tracks, kept beside the
-- tag values (which stay exactly as read from the files), with source, score and fetched_at. Times are ISO-8601
-- UTC strings computed by the application.

-- One row per album looked up (no row: pending). status: matched (a release reached the threshold, or the user
-- accepted one), candidates (the best releases are kept for the user), unmatched (no release, or user rejected).
CREATE TABLE album_matches (
    album_id            INTEGER PRIMARY KEY REFERENCES albums(album_id) ON DELETE CASCADE,
    status              TEXT NOT NULL CHECK (status IN ('matched', 'candidates', 'unmatched')),
    decided_by          TEXT NOT NULL CHECK (decided_by IN ('auto', 'user')),
    source              TEXT NOT NULL,
    release_id          TEXT,
    release_group_id    TEXT,
    release_title       TEXT,
    release_artist      TEXT,
    label               TEXT,
    release_date        TEXT,
    release_track_count INTEGER,
    album_track_count   INTEGER,
    score               REAL,
    candidates          TEXT NOT NULL DEFAULT '[]',   -- JSON list of scored releases, best first
    fetched_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX album_matches_status ON album_matches(status);

-- Per track and source: the recording a service names (MusicBrainz from the matched release, AcoustID from the
-- audio fingerprint) with the title and artist it gives.
CREATE TABLE track_external (
    track_id       INTEGER NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    source         TEXT NOT NULL,
    recording_id   TEXT,
    title          TEXT,
    artist         TEXT,
    score          REAL,
    fetched_at     TEXT NOT NULL,
    PRIMARY KEY (track_id, source)
);

-- Per artist and source: MusicBrainz artist id, Last.fm summary, listeners, tags and similar artists.
CREATE TABLE artist_external (
    artist_id      INTEGER NOT NULL REFERENCES artists(artist_id) ON DELETE CASCADE,
    source         TEXT NOT NULL,
    musicbrainz_artist_id TEXT,
    score          REAL,
    summary        TEXT,
    listeners      INTEGER,
    tags           TEXT NOT NULL DEFAULT '[]',        -- JSON list, most popular first, as the service gave them
    similar_artists TEXT NOT NULL DEFAULT '[]',       -- JSON list of artist names ("similar" is reserved in SQL)
    url            TEXT,
    fetched_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,                     -- refreshed after this
    PRIMARY KEY (artist_id, source)
);

-- Canonical genres (the curated whitelist) derived from an artist's online tags; merged after the files' own
-- genres into track_genres_normalized.
CREATE TABLE artist_genres (
    artist_id      INTEGER NOT NULL REFERENCES artists(artist_id) ON DELETE CASCADE,
    genre          TEXT NOT NULL,
    position       INTEGER NOT NULL,
    source         TEXT NOT NULL,
    PRIMARY KEY (artist_id, genre)
);

-- Negative cache, like cover_misses: a service that found nothing (kind 'miss') or gave an unusable answer
-- (kind 'failure') for an entity is not asked again before expires_at.
CREATE TABLE external_misses (
    entity_type    TEXT NOT NULL CHECK (entity_type IN ('album', 'artist', 'track')),
    entity_id      INTEGER NOT NULL,
    source         TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('miss', 'failure')),
    reason         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 1,
    checked_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    PRIMARY KEY (entity_type, entity_id, source)
);
CREATE INDEX external_misses_expiry ON external_misses(expires_at);

-- Response cache with a time to live: the same request within its TTL is answered from here, not the network.
CREATE TABLE external_cache (
    source         TEXT NOT NULL,
    request_key    TEXT NOT NULL,
    body           TEXT NOT NULL,
    fetched_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    PRIMARY KEY (source, request_key)
);
CREATE INDEX external_cache_expiry ON external_cache(expires_at);
