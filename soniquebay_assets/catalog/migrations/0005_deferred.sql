-- Deferred work queue: heavy follow-up work (enrichment, vectors, covers) recorded at catalog insert and done later.

CREATE TABLE deferred_work (
    work_id        INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('enrichment', 'vectors', 'covers')),
    entity_type    TEXT NOT NULL CHECK (entity_type IN ('track', 'album', 'artist')),
    entity_id      INTEGER NOT NULL,
    shard          TEXT NOT NULL,
    priority       INTEGER NOT NULL DEFAULT 1,     -- 0 high, 1 normal, 2 low (lower is served first)
    not_before     REAL NOT NULL,                  -- unix seconds: not claimable before this
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL DEFAULT 5,
    last_error     TEXT,
    state          TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'in_progress', 'done', 'failed', 'dead')),
    claimed_by     TEXT,
    claimed_at     REAL,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    UNIQUE (kind, entity_type, entity_id)
);
-- The claim query: due pending items of one kind, best priority first, oldest due first.
CREATE INDEX deferred_work_claim ON deferred_work(kind, state, priority, not_before);
CREATE INDEX deferred_work_state ON deferred_work(state, updated_at);
CREATE INDEX deferred_work_shard ON deferred_work(kind, shard, state);
