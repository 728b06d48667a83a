-- Catalog foundation: inventory, raw tags, artists, albums, tracks, genres, scan errors, scan history.

CREATE TABLE files (
    file_id        INTEGER PRIMARY KEY,
    path           TEXT NOT NULL UNIQUE,          -- absolute; non-UTF-8 bytes shown with \x escapes
    raw_path       BLOB,                           -- os.fsencode(path) when the name is not valid UTF-8
    root           TEXT NOT NULL,                  -- the library root it was found under
    shard          TEXT NOT NULL,                  -- partition key, from the album folder
    album_folder   TEXT NOT NULL,                  -- folder with disc sub-folders collapsed
    size           INTEGER NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    fingerprint    TEXT,                           -- size + sampled content hash, for move detection
    stage          TEXT NOT NULL DEFAULT 'inventoried'
                   CHECK (stage IN ('inventoried', 'extracted', 'cataloged', 'error')),
    first_seen     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_changed   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX files_shard_stage ON files(shard, stage);
CREATE INDEX files_fingerprint ON files(size, fingerprint);

CREATE TABLE raw_tags (
    file_id        INTEGER PRIMARY KEY REFERENCES files(file_id) ON DELETE CASCADE,
    payload        TEXT NOT NULL,                  -- TagRecord as JSON
    quality_score  REAL NOT NULL,
    extracted_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE artists (
    artist_id      INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    name_key       TEXT NOT NULL UNIQUE,           -- casefolded, whitespace-collapsed
    musicbrainz_artist_id TEXT,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE albums (
    album_id       INTEGER PRIMARY KEY,
    album_key      TEXT NOT NULL UNIQUE,           -- mb:<release id> or tag:<album artist>|<title>|<folder>
    title          TEXT NOT NULL,
    album_artist   TEXT NOT NULL,                  -- display string ("Various Artists" for compilations)
    is_compilation INTEGER NOT NULL DEFAULT 0,
    year           INTEGER,
    date           TEXT,
    original_date  TEXT,
    musicbrainz_release_id       TEXT,
    musicbrainz_release_group_id TEXT,
    label          TEXT,
    track_total    INTEGER,
    disc_total     INTEGER,
    folder         TEXT NOT NULL,
    title_from_fallback INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX albums_mb_release ON albums(musicbrainz_release_id);
CREATE INDEX albums_folder ON albums(folder);

CREATE TABLE album_artists (
    album_id       INTEGER NOT NULL REFERENCES albums(album_id) ON DELETE CASCADE,
    artist_id      INTEGER NOT NULL REFERENCES artists(artist_id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    PRIMARY KEY (album_id, artist_id)
);
CREATE INDEX album_artists_artist ON album_artists(artist_id);

CREATE TABLE tracks (
    track_id       INTEGER PRIMARY KEY,
    file_id        INTEGER NOT NULL UNIQUE REFERENCES files(file_id) ON DELETE CASCADE,
    path           TEXT NOT NULL UNIQUE,
    shard          TEXT NOT NULL,
    size           INTEGER NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    fingerprint    TEXT,
    format         TEXT,
    codec          TEXT,
    duration_s     REAL,
    bitrate        INTEGER,
    sample_rate    INTEGER,
    channels       INTEGER,
    bit_depth      INTEGER,
    title          TEXT NOT NULL,
    title_from_fallback INTEGER NOT NULL DEFAULT 0,
    artist_display TEXT NOT NULL,
    album_id       INTEGER NOT NULL REFERENCES albums(album_id),
    track_number   INTEGER,
    track_total    INTEGER,
    disc_number    INTEGER,
    disc_total     INTEGER,
    year           INTEGER,
    date           TEXT,
    original_date  TEXT,
    composer       TEXT,
    musicbrainz_recording_id TEXT,
    musicbrainz_track_id     TEXT,
    isrc           TEXT,
    label          TEXT,
    comment        TEXT,
    compilation    INTEGER NOT NULL DEFAULT 0,
    bpm_tag        REAL,
    key_tag        TEXT,
    replaygain_track_gain REAL,
    replaygain_track_peak REAL,
    replaygain_album_gain REAL,
    replaygain_album_peak REAL,
    has_embedded_picture INTEGER NOT NULL DEFAULT 0,
    audio_ok       INTEGER NOT NULL DEFAULT 0,
    quality_score  REAL NOT NULL DEFAULT 0,
    fallbacks      TEXT NOT NULL DEFAULT '[]',     -- JSON list of fields filled from the path
    tags_changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    audio_changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX tracks_album ON tracks(album_id);
CREATE INDEX tracks_shard ON tracks(shard);
CREATE INDEX tracks_mb_recording ON tracks(musicbrainz_recording_id);

CREATE TABLE track_artists (
    track_id       INTEGER NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    artist_id      INTEGER NOT NULL REFERENCES artists(artist_id) ON DELETE CASCADE,
    role           TEXT NOT NULL CHECK (role IN ('main', 'featured')),
    position       INTEGER NOT NULL,
    PRIMARY KEY (track_id, artist_id, role)
);
CREATE INDEX track_artists_artist ON track_artists(artist_id);

CREATE TABLE genres (
    genre_id       INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    name_key       TEXT NOT NULL UNIQUE
);

CREATE TABLE track_genres (
    track_id       INTEGER NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    genre_id       INTEGER NOT NULL REFERENCES genres(genre_id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    PRIMARY KEY (track_id, genre_id)
);
CREATE INDEX track_genres_genre ON track_genres(genre_id);

CREATE TABLE scan_errors (
    error_id       INTEGER PRIMARY KEY,
    path           TEXT NOT NULL,
    stage          TEXT NOT NULL,                  -- inventory, extract, catalog, enrich, vector, cover
    reason         TEXT NOT NULL,                  -- short, stable cause (used for counts by reason)
    detail         TEXT NOT NULL DEFAULT '',
    severity       TEXT NOT NULL DEFAULT 'error' CHECK (severity IN ('error', 'warning')),
    shard          TEXT,
    occurrences    INTEGER NOT NULL DEFAULT 1,
    first_seen     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_seen      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (path, stage)
);
CREATE INDEX scan_errors_shard ON scan_errors(shard);

CREATE TABLE scans (
    scan_id        INTEGER PRIMARY KEY,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    roots          TEXT NOT NULL,                  -- JSON list
    origin         TEXT NOT NULL,                  -- cli, dagster, sensor
    stats          TEXT NOT NULL DEFAULT '{}'      -- JSON counts
);

CREATE TABLE shard_digests (
    shard          TEXT PRIMARY KEY,
    digest         TEXT NOT NULL,                  -- hash of (path, size, mtime) of the shard's files at last inventory
    file_count     INTEGER NOT NULL,
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
