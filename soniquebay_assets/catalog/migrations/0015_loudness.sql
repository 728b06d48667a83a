-- Loudness of the whole track (ITU-R BS.1770-4, every channel at the file's own rate): true and sample peaks
-- and the histogram of its 400 ms gating blocks, from which an album's loudness is gated over the union of its
-- tracks' blocks (ReplayGain 2.0 album gain) without decoding anything again. From analysis version 8 on,
-- track_analysis.replaygain_track_peak holds the true peak (linear), as ReplayGain tags carry it.
ALTER TABLE track_analysis ADD COLUMN sample_peak REAL;
ALTER TABLE track_analysis ADD COLUMN true_peak_dbtp REAL;
ALTER TABLE track_analysis ADD COLUMN loudness_histogram BLOB;  -- domain.analysis.loudness.BlockHistogram

-- One row per album whose tracks were measured; `signature` (tracks, their ids, their latest analysis) tells
-- when a track of the album was added, removed or re-analysed, so the album is gated again.
CREATE TABLE album_loudness (
    album_id       INTEGER PRIMARY KEY REFERENCES albums(album_id) ON DELETE CASCADE,
    loudness_lufs  REAL,                           -- the album as one programme; NULL when nothing passes the gates
    replaygain_album_gain_db REAL,                 -- -18 LUFS - loudness_lufs
    replaygain_album_peak REAL,                    -- highest true peak of its tracks, linear
    tracks_measured INTEGER NOT NULL,              -- tracks whose blocks are in the gating
    tracks_total   INTEGER NOT NULL,
    signature      TEXT NOT NULL,
    computed_at    TEXT NOT NULL
);
