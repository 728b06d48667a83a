-- Deferred work kinds and entity types are checked in catalog/deferred.py (the kinds come from the stage registry,
-- soniquebay_assets/stages.py), so a new stage needs no migration: deferred_work is rebuilt without the CHECKs
-- that listed them. Items keep their order (work_id order), state, attempts and claims.

CREATE TABLE deferred_work_next (
    work_id        INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    entity_type    TEXT NOT NULL,
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
-- new ids in the old order (copying the ids themselves would leave PostgreSQL's id sequence behind them)
INSERT INTO deferred_work_next (kind, entity_type, entity_id, shard, priority, not_before, attempts, max_attempts,
                                last_error, state, claimed_by, claimed_at, created_at, updated_at)
    SELECT kind, entity_type, entity_id, shard, priority, not_before, attempts, max_attempts,
           last_error, state, claimed_by, claimed_at, created_at, updated_at
    FROM deferred_work ORDER BY work_id;
DROP TABLE deferred_work;
ALTER TABLE deferred_work_next RENAME TO deferred_work;
-- The claim query: due pending items of one kind, best priority first, oldest due first.
CREATE INDEX deferred_work_claim ON deferred_work(kind, state, priority, not_before);
CREATE INDEX deferred_work_state ON deferred_work(state, updated_at);
CREATE INDEX deferred_work_shard ON deferred_work(kind, shard, state);
