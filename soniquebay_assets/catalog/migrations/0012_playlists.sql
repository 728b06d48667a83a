-- Saved playlists: their definitions (a generation request), the entries of their last materialization (to say
-- what changed), where each was pushed and the song ids servers gave our tracks. Times are ISO-8601 UTC strings.

CREATE TABLE playlists (
    playlist_id    INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,                  -- similar, radio, text, filter, path, clusters
    request        TEXT NOT NULL,                  -- the generation request as JSON (domain/playlists.py)
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    materialized_at TEXT,                          -- last time its entries were generated and written
    catalog_state  TEXT                            -- the catalog state (playlists.catalog_state) it was made from
);

-- One row per entry of each part of the last materialization (a clusters playlist has one part per cluster).
CREATE TABLE playlist_entries (
    playlist_id    INTEGER NOT NULL REFERENCES playlists(playlist_id) ON DELETE CASCADE,
    part           INTEGER NOT NULL,               -- 0 for single playlists, cluster number otherwise
    position       INTEGER NOT NULL,               -- 1-based
    track_id       INTEGER NOT NULL,               -- no foreign key: a deleted track must stay visible as gone
    path           TEXT NOT NULL,
    artist         TEXT NOT NULL,
    title          TEXT NOT NULL,
    album          TEXT NOT NULL DEFAULT '',
    duration_s     REAL,
    reason         TEXT NOT NULL,
    PRIMARY KEY (playlist_id, part, position)
);
CREATE INDEX playlist_entries_track ON playlist_entries(track_id);

-- The name, file and description of each part, as last written.
CREATE TABLE playlist_parts (
    playlist_id    INTEGER NOT NULL REFERENCES playlists(playlist_id) ON DELETE CASCADE,
    part           INTEGER NOT NULL,
    title          TEXT NOT NULL,                  -- the name players show
    description    TEXT NOT NULL DEFAULT '',
    file           TEXT,                           -- the M3U8 written, absolute
    PRIMARY KEY (playlist_id, part)
);

-- Per part and push target (a Subsonic server): the server's playlist id and the last push outcome.
CREATE TABLE playlist_pushes (
    playlist_id    INTEGER NOT NULL REFERENCES playlists(playlist_id) ON DELETE CASCADE,
    part           INTEGER NOT NULL,
    target         TEXT NOT NULL,                  -- the server's label (settings.subsonic_servers)
    remote_id      TEXT,
    status         TEXT NOT NULL,                  -- ok, partial, unchanged, deferred, auth_error, error
    pushed         INTEGER NOT NULL DEFAULT 0,     -- entries on the server
    unmatched      TEXT NOT NULL DEFAULT '[]',     -- JSON list of {track_id, path, reason}
    message        TEXT NOT NULL DEFAULT '',
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (playlist_id, part, target)
);

-- Song ids a server gave our tracks (checked against the server's own playlist after every push).
CREATE TABLE subsonic_song_ids (
    target         TEXT NOT NULL,
    track_id       INTEGER NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    song_id        TEXT NOT NULL,
    matched_by     TEXT NOT NULL,                  -- path or tags
    mapped_at      TEXT NOT NULL,
    PRIMARY KEY (target, track_id)
);
