-- Audio enrichment: one analysis row per track (NULL = not measured, never a default), normalized genres and
-- mood tags derived from the analysis.

CREATE TABLE track_analysis (
    track_id       INTEGER PRIMARY KEY REFERENCES tracks(track_id) ON DELETE CASCADE,
    analysis_version INTEGER NOT NULL,
    analyzed_at    TEXT NOT NULL,                  -- same format as tracks.audio_changed_at
    status         TEXT NOT NULL CHECK (status IN ('ok', 'partial', 'error')),
    error          TEXT,                           -- what was not measured and why (partial) or the failure (error)
    bpm            REAL,
    bpm_confidence REAL,
    beat_count     INTEGER,                        -- bpm x duration / 60 (an estimate, not a beat-tracker count)
    key            TEXT,                           -- tonic: C, C#, D, Eb, E, F, F#, G, Ab, A, Bb, B
    mode           TEXT CHECK (mode IN ('major', 'minor')),
    key_confidence REAL,
    camelot        TEXT,
    open_key       TEXT,
    loudness_lufs  REAL,
    loudness_range_lu REAL,
    replaygain_track_gain_db REAL,                 -- ReplayGain 2.0: -18 LUFS - integrated loudness
    replaygain_track_peak REAL,                    -- sample peak of the analysed excerpts (a lower bound)
    energy         REAL,
    danceability   REAL,
    acousticness   REAL,
    instrumentalness REAL,
    mood_happy     REAL,
    mood_sad       REAL,
    mood_aggressive REAL,
    mood_relaxed   REAL,
    mood_party     REAL,
    spectral_centroid REAL,
    spectral_rolloff REAL,
    spectral_flatness REAL,
    zero_crossing_rate REAL,
    duration_s     REAL,
    analyzed_seconds REAL,                         -- seconds of audio actually analysed (the excerpts)
    decoder        TEXT,                           -- soundfile or ffmpeg
    seconds_spent  REAL                            -- wall seconds to decode + analyse in the worker
);
CREATE INDEX track_analysis_version ON track_analysis(analysis_version);
CREATE INDEX track_analysis_status ON track_analysis(status);
CREATE INDEX track_analysis_bpm ON track_analysis(bpm);
CREATE INDEX track_analysis_camelot ON track_analysis(camelot);

-- Canonical genres per track (split, synonyms merged, canonical casing), derived from the tagged genres in
-- genres/track_genres, which stay exactly as tagged.
CREATE TABLE track_genres_normalized (
    track_id       INTEGER NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    genre          TEXT NOT NULL,
    position       INTEGER NOT NULL,
    PRIMARY KEY (track_id, genre)
);
CREATE INDEX track_genres_normalized_genre ON track_genres_normalized(genre);

-- Mood tags derived from the analysis scores (thresholds in domain/data/genre_synonyms.json).
CREATE TABLE track_mood_tags (
    track_id       INTEGER NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    tag            TEXT NOT NULL,
    PRIMARY KEY (track_id, tag)
);
CREATE INDEX track_mood_tags_tag ON track_mood_tags(tag);
