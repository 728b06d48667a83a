-- Opt-in tag write-back (soniquebay write-tags, the tags_written_back asset): one row per run, and a journal of
-- every file changed with each native key's value before and after, so that `write-tags --undo` can restore it.

CREATE TABLE tag_write_runs (
    run_id         INTEGER PRIMARY KEY,
    action         TEXT NOT NULL CHECK (action IN ('write', 'undo')),
    origin         TEXT NOT NULL,                  -- cli, dagster
    groups         TEXT NOT NULL DEFAULT '[]',     -- JSON list: replaygain, bpm, key, musicbrainz_ids, covers
    options        TEXT NOT NULL DEFAULT '{}',     -- JSON: key notation, overwritten fields, scope
    started_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at    TEXT,
    stats          TEXT NOT NULL DEFAULT '{}'      -- JSON counts
);

-- state: pending (recorded before the file is renamed into place: a run killed then is settled by the next one
-- from what the file holds), written, undone.
CREATE TABLE tag_write_journal (
    entry_id       INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES tag_write_runs(run_id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('tags', 'cover')),
    file_id        INTEGER REFERENCES files(file_id) ON DELETE CASCADE,  -- tags: the audio file (follows moves)
    album_id       INTEGER,                        -- cover: the album whose picture was written
    path           TEXT NOT NULL,                  -- the audio file, or the cover file created
    format         TEXT,                           -- catalog format of the audio file
    changes        TEXT NOT NULL DEFAULT '[]',     -- JSON: [{field, key, before, after, before_raw}] in write order
    sha256         TEXT,                           -- cover: the bytes written
    state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'written', 'undone')),
    size_after     INTEGER,
    mtime_ns_after INTEGER,
    written_at     TEXT,
    undone_at      TEXT,
    undone_by      INTEGER                         -- run_id of the undo
);
CREATE INDEX tag_write_journal_run ON tag_write_journal(run_id);
CREATE INDEX tag_write_journal_file ON tag_write_journal(file_id);
CREATE INDEX tag_write_journal_state ON tag_write_journal(state);
