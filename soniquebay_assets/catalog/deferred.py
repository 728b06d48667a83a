"""Deferred work queue in the catalog DB: idempotent enqueue, atomic claim, backoff, dead letter, cleanup, metrics.

States: pending -> in_progress -> done; in_progress -> failed (waits out its backoff) -> pending (retry job) or
-> dead once attempts reach max_attempts. Times are unix seconds (REAL) so tests can pass `now`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.catalog.db import POSTGRESQL, dialect_of, execute_rows, id_set, transaction
from soniquebay_assets.stages import deferred_kinds

KINDS = deferred_kinds()  # checked here, not by the table: a new stage's kind needs no migration
# entity type -> (table, id column): an item whose entity is gone is an orphan
_ENTITY_TABLES = {"track": ("tracks", "track_id"), "album": ("albums", "album_id"),
                  "artist": ("artists", "artist_id"), "playlist": ("playlists", "playlist_id")}
ENTITY_TYPES = tuple(_ENTITY_TABLES)
PRIORITIES = {"high": 0, "normal": 1, "low": 2}
STATES = ("pending", "in_progress", "done", "failed", "dead")
DEFAULT_MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 60.0
BACKOFF_CAP_S = 6 * 3600.0
STALE_CLAIM_S = 2 * 3600.0

# Data ordering: a track's vector is built from its analysis, so its vectors item is not due while the track's
# enrichment item is still to do (pending, claimed, or failed and waiting for a retry).
_WAITS_FOR_ANALYSIS = (
    " AND NOT (deferred_work.kind = 'vectors' AND deferred_work.entity_type = 'track' AND EXISTS ("
    "SELECT 1 FROM deferred_work analysis_item WHERE analysis_item.kind = 'enrichment'"
    " AND analysis_item.entity_type = 'track' AND analysis_item.entity_id = deferred_work.entity_id"
    " AND analysis_item.state IN ('pending', 'in_progress', 'failed')))"
)

_COLUMNS = "work_id, kind, entity_type, entity_id, shard, priority, attempts, max_attempts, not_before, claimed_by"


@dataclass(frozen=True)
class WorkItem:
    work_id: int
    kind: str
    entity_type: str
    entity_id: int
    shard: str
    priority: int
    attempts: int
    max_attempts: int
    not_before: float
    claimed_by: str | None


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


@contextmanager
def _write(conn: Any, *, immediate: bool = True) -> Iterator[Any]:
    """Join the caller's transaction (e.g. the catalog insert batch) or open a BEGIN IMMEDIATE one."""
    if conn.in_transaction:
        yield conn
    else:
        with transaction(conn, immediate=immediate):
            yield conn


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown deferred kind {kind!r}; known: {', '.join(KINDS)}")


def backoff_s(attempts: int) -> float:
    """Delay before retry number `attempts` + 1: 1, 2, 4, ... minutes, capped at 6 hours."""
    return min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S)


# --------------------------------------------------------------------------- enqueue


_UPSERT_CONFLICT = (
    " ON CONFLICT (kind, entity_type, entity_id) DO UPDATE SET"
    "  state = 'pending', attempts = 0, last_error = NULL, claimed_by = NULL, claimed_at = NULL,"
    "  shard = excluded.shard, priority = excluded.priority, not_before = excluded.not_before,"
    "  max_attempts = excluded.max_attempts, updated_at = excluded.updated_at"
    " WHERE deferred_work.state IN ('done', 'failed', 'dead')"
)
_INSERT = ("INSERT INTO deferred_work (kind, entity_type, entity_id, shard, priority, not_before, max_attempts,"
           " created_at, updated_at)")


def _check_entity_type(entity_type: str) -> None:
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"unknown entity type {entity_type!r}")


def enqueue(conn: Any, kind: str, entity_type: str, entities: Iterable[tuple[int, str]], *,
            priority: str = "normal", delay_s: float = 0.0, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
            now: float | None = None) -> int:
    """Add (entity_id, shard) items; an existing pending/in-progress item is left as is, a finished one is reset.

    Returns how many rows were inserted or reset.
    """
    _check_kind(kind)
    _check_entity_type(entity_type)
    rank = PRIORITIES[priority]
    stamp = _now(now)
    first_shard: dict[int, str] = {}
    for eid, shard in entities:  # a repeated entity changes nothing after its first row: keep the first
        first_shard.setdefault(int(eid), shard)
    rows = [(kind, entity_type, eid, shard, rank, stamp + delay_s, max_attempts, stamp, stamp)
            for eid, shard in first_shard.items()]
    if not rows:
        return 0
    changed = 0
    with _write(conn):
        before = conn.total_changes
        execute_rows(conn, _INSERT + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)" + _UPSERT_CONFLICT, rows)
        changed = conn.total_changes - before
    return changed


def _enqueue_selected(conn: Any, kinds: Sequence[str], entity_type: str, select: str, ids: Sequence[int], *,
                      priority: str, now: float | None) -> int:
    """enqueue() of the (entity_id, shard) rows `select` gives for `ids` (its `{ids}` is their subquery), in
    entity order, as one INSERT ... SELECT per kind: the rows never travel through Python."""
    for kind in kinds:
        _check_kind(kind)
    _check_entity_type(entity_type)
    if not ids:
        return 0
    subquery, param = id_set(conn, ids)
    stamp = _now(now)
    # WHERE true: SQLite reads the ON of ON CONFLICT as a join constraint after a bare FROM
    sql = (f"{_INSERT} SELECT ?, ?, picked.entity_id, picked.shard, ?, ?, ?, ?, ? FROM"
           f" ({select.format(ids=subquery)}) picked WHERE true ORDER BY picked.entity_id{_UPSERT_CONFLICT}")
    with _write(conn):
        before = conn.total_changes
        for kind in kinds:
            conn.execute(sql, (kind, entity_type, PRIORITIES[priority], stamp, DEFAULT_MAX_ATTEMPTS, stamp, stamp,
                               param))
        return conn.total_changes - before


_TRACKS = "SELECT track_id AS entity_id, shard FROM tracks WHERE track_id IN ({ids})"
_ALBUMS = ("SELECT album_id AS entity_id, MIN(shard) AS shard FROM tracks WHERE album_id IN ({ids})"
           " GROUP BY album_id")
_ALBUMS_OF_TRACKS = ("SELECT album_id AS entity_id, MIN(shard) AS shard FROM tracks WHERE album_id IN"
                     " (SELECT album_id FROM tracks WHERE track_id IN ({ids})) GROUP BY album_id")


def enqueue_for_tracks(conn: Any, track_ids: Sequence[int], kinds: Sequence[str] = ("enrichment", "vectors"), *,
                       priority: str = "normal", now: float | None = None) -> int:
    """Deferred work for inserted or changed tracks (called by the catalog insert)."""
    return _enqueue_selected(conn, kinds, "track", _TRACKS, track_ids, priority=priority, now=now)


def enqueue_for_albums(conn: Any, album_ids: Sequence[int], kinds: Sequence[str] = ("covers",), *,
                       priority: str = "normal", now: float | None = None) -> int:
    """Deferred work for inserted or changed albums; an album's shard is its tracks' shard."""
    return _enqueue_selected(conn, kinds, "album", _ALBUMS, album_ids, priority=priority, now=now)


# --------------------------------------------------------------------------- claim and finish


def claim(conn: Any, kind: str, worker: str, *, limit: int = 100, shards: Sequence[str] | None = None,
          now: float | None = None) -> list[WorkItem]:
    """Atomically take up to `limit` due pending items (best priority, then longest due); never the same twice."""
    _check_kind(kind)
    stamp = _now(now)
    shard_filter, params = "", [kind, stamp]
    if shards is not None:
        if not shards:
            return []
        shard_filter = f" AND shard IN ({','.join('?' * len(shards))})"
        params += list(shards)
    # One UPDATE ... RETURNING: on SQLite under BEGIN IMMEDIATE, so the select and the state change cannot
    # interleave with another claimer; on PostgreSQL the selected rows are locked FOR UPDATE and rows another
    # claimer holds are skipped, so claimers on several hosts never wait on each other nor take the same item.
    # Only due rows are ordered, so an item not yet due never sits in front of due ones.
    postgres = dialect_of(conn) == POSTGRESQL
    with _write(conn, immediate=not postgres):
        rows = conn.execute(
            "UPDATE deferred_work SET state = 'in_progress', claimed_by = ?, claimed_at = ?, attempts = attempts + 1,"
            " updated_at = ? WHERE work_id IN (SELECT work_id FROM deferred_work"
            "  WHERE kind = ? AND state = 'pending' AND not_before <= ?" + shard_filter + _WAITS_FOR_ANALYSIS +
            "  ORDER BY priority, not_before, work_id LIMIT ?" + (" FOR UPDATE SKIP LOCKED" if postgres else "") + ")"
            f" RETURNING {_COLUMNS}",
            [worker, stamp, stamp, *params, int(limit)],
        ).fetchall()
    items = [WorkItem(*row) for row in rows]
    return sorted(items, key=lambda i: (i.priority, i.not_before, i.work_id))


def complete(conn: Any, work_ids: Sequence[int], *, now: float | None = None) -> int:
    stamp = _now(now)
    with _write(conn):
        return _update_ids(conn, "UPDATE deferred_work SET state = 'done', last_error = NULL, updated_at = ?"
                           " WHERE state = 'in_progress' AND work_id IN ({})", [stamp], work_ids)


def fail(conn: Any, work_ids: Sequence[int], error: str, *, now: float | None = None) -> dict[str, int]:
    """Record a failure: retry later with exponential backoff, or dead-letter once attempts reach the maximum."""
    stamp = _now(now)
    counts = {"failed": 0, "dead": 0}
    with _write(conn):
        ids, param = id_set(conn, work_ids)
        rows = conn.execute(f"SELECT work_id, attempts, max_attempts FROM deferred_work"
                            f" WHERE state = 'in_progress' AND work_id IN ({ids})", (param,)).fetchall()
        for work_id, attempts, max_attempts in rows:
            state = "dead" if attempts >= max_attempts else "failed"
            conn.execute(
                "UPDATE deferred_work SET state = ?, last_error = ?, not_before = ?, claimed_by = NULL,"
                " claimed_at = NULL, updated_at = ? WHERE work_id = ?",
                (state, error[:2000], stamp + backoff_s(attempts), stamp, work_id),
            )
            counts[state] += 1
    return counts


def awaiting_analysis(conn: Any, track_ids: Sequence[int]) -> set[int]:
    """The tracks among `track_ids` whose enrichment item is still to do (their vectors item is not due)."""
    if not track_ids:
        return set()
    subquery, param = id_set(conn, track_ids)
    return {row[0] for row in conn.execute(
        "SELECT DISTINCT entity_id FROM deferred_work WHERE kind = 'enrichment' AND entity_type = 'track'"
        f" AND state IN ('pending', 'in_progress', 'failed') AND entity_id IN ({subquery})", [param])}


def claimed_by(conn: Any, worker: str) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT work_id FROM deferred_work WHERE claimed_by = ? AND state = 'in_progress'", (worker,))]


def claimed_entities(conn: Any, worker: str, kind: str) -> dict[tuple[str, int], int]:
    """(entity_type, entity_id) -> work_id of the in-progress items of `kind` a claimer holds."""
    rows = conn.execute("SELECT entity_type, entity_id, work_id FROM deferred_work"
                        " WHERE claimed_by = ? AND kind = ? AND state = 'in_progress'", (worker, kind))
    return {(r[0], r[1]): r[2] for r in rows}


def release(conn: Any, work_ids: Sequence[int], *, delay_s: float = 0.0, now: float | None = None) -> int:
    """Give claimed items back without counting an attempt (work left for a later run): pending after delay_s."""
    stamp = _now(now)
    with _write(conn):
        return _update_ids(conn, "UPDATE deferred_work SET state = 'pending', claimed_by = NULL, claimed_at = NULL,"
                           " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, not_before = ?,"
                           " updated_at = ? WHERE state = 'in_progress' AND work_id IN ({})",
                           [stamp + delay_s, stamp], work_ids)


def complete_claimed(conn: Any, worker: str, *, now: float | None = None) -> int:
    return complete(conn, claimed_by(conn, worker), now=now)


def fail_claimed(conn: Any, worker: str, error: str, *, now: float | None = None) -> dict[str, int]:
    return fail(conn, claimed_by(conn, worker), error, now=now)


def release_claimed(conn: Any, worker: str, reason: str, *, now: float | None = None) -> dict[str, int]:
    """A claim whose run died before its steps could fail (process killed): its items are due again at once,
    or dead once out of attempts (a run that always dies must not loop forever)."""
    stamp = _now(now)
    with _write(conn):
        dead = conn.execute(
            "UPDATE deferred_work SET state = 'dead', last_error = ?, claimed_by = NULL, claimed_at = NULL,"
            " updated_at = ? WHERE claimed_by = ? AND state = 'in_progress' AND attempts >= max_attempts",
            (reason[:2000], stamp, worker)).rowcount
        pending = conn.execute(
            "UPDATE deferred_work SET state = 'pending', last_error = ?, claimed_by = NULL, claimed_at = NULL,"
            " not_before = ?, updated_at = ? WHERE claimed_by = ? AND state = 'in_progress'",
            (reason[:2000], stamp, stamp, worker)).rowcount
    return {"released": pending, "dead": dead}


def claims_in_progress(conn: Any) -> dict[str, float]:
    """claim id -> when it was taken, for every claim still holding items."""
    return {row[0]: row[1] for row in conn.execute(
        "SELECT claimed_by, MIN(claimed_at) FROM deferred_work WHERE state = 'in_progress' AND claimed_by IS NOT NULL"
        " GROUP BY claimed_by")}


def _update_ids(conn: Any, sql: str, leading: list, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    subquery, param = id_set(conn, ids)
    return conn.execute(sql.format(subquery), [*leading, param]).rowcount


# --------------------------------------------------------------------------- upkeep


def retry_failed(conn: Any, *, now: float | None = None) -> int:
    """Failed items whose backoff has elapsed become pending again."""
    stamp = _now(now)
    with _write(conn):
        return conn.execute("UPDATE deferred_work SET state = 'pending', updated_at = ?"
                            " WHERE state = 'failed' AND not_before <= ?", (stamp, stamp)).rowcount


def reclaim_stale(conn: Any, *, older_than_s: float = STALE_CLAIM_S, now: float | None = None) -> dict[str, int]:
    """In-progress items whose claimer vanished go back to pending (or dead when out of attempts)."""
    stamp = _now(now)
    cutoff = stamp - older_than_s
    with _write(conn):
        dead = conn.execute(
            "UPDATE deferred_work SET state = 'dead', last_error = 'claim by ' || coalesce(claimed_by, '?') ||"
            " ' went stale on its last attempt', claimed_by = NULL, claimed_at = NULL, updated_at = ?"
            " WHERE state = 'in_progress' AND claimed_at < ? AND attempts >= max_attempts", (stamp, cutoff)).rowcount
        pending = conn.execute(
            "UPDATE deferred_work SET state = 'pending', last_error = 'claim by ' || coalesce(claimed_by, '?') ||"
            " ' went stale', claimed_by = NULL, claimed_at = NULL, updated_at = ?"
            " WHERE state = 'in_progress' AND claimed_at < ?", (stamp, cutoff)).rowcount
    return {"reclaimed": pending, "dead": dead}


def cleanup(conn: Any, *, done_older_than_s: float = 7 * 86400, dead_older_than_s: float = 30 * 86400,
            now: float | None = None) -> dict[str, int]:
    """Delete done items after a week and dead ones after a month (kept that long for inspection)."""
    stamp = _now(now)
    with _write(conn):
        done = conn.execute("DELETE FROM deferred_work WHERE state = 'done' AND updated_at < ?",
                            (stamp - done_older_than_s,)).rowcount
        dead = conn.execute("DELETE FROM deferred_work WHERE state = 'dead' AND updated_at < ?",
                            (stamp - dead_older_than_s,)).rowcount
    return {"done_deleted": done, "dead_deleted": dead}


def delete_orphans(conn: Any) -> int:
    """Items whose track/album/artist no longer exists (file deleted) are dropped."""
    removed = 0
    with _write(conn):
        for entity_type, (table, key) in _ENTITY_TABLES.items():
            removed += conn.execute(
                f"DELETE FROM deferred_work WHERE entity_type = ? AND NOT EXISTS"
                f" (SELECT 1 FROM {table} WHERE {table}.{key} = deferred_work.entity_id)", (entity_type,)).rowcount
    return removed


# --------------------------------------------------------------------------- reading


def pending_shards(conn: Any, kind: str, *, limit: int = 16, now: float | None = None) -> list[str]:
    """Shards holding due pending items of `kind`, most urgent first, at most `limit`."""
    _check_kind(kind)
    rows = conn.execute(
        "SELECT shard FROM deferred_work WHERE kind = ? AND state = 'pending' AND not_before <= ?"
        + _WAITS_FOR_ANALYSIS + " GROUP BY shard ORDER BY MIN(priority), MIN(not_before), shard LIMIT ?",
        (kind, _now(now), int(limit))).fetchall()
    return [r[0] for r in rows]


def metrics(conn: Any, *, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per kind: count per state, due pending, oldest pending wait (s), and the most common last errors."""
    stamp = _now(now)
    out: dict[str, dict[str, Any]] = {
        kind: {**{state: 0 for state in STATES}, "due": 0, "oldest_pending_age_s": None, "errors": {}}
        for kind in KINDS
    }
    for kind, state, count in conn.execute("SELECT kind, state, COUNT(*) FROM deferred_work GROUP BY kind, state"):
        out[kind][state] = count
    for kind, due, oldest in conn.execute(
            "SELECT kind, SUM(CASE WHEN not_before <= ? THEN 1 ELSE 0 END), MIN(updated_at) FROM deferred_work WHERE state = 'pending'"
            " GROUP BY kind", (stamp,)):
        out[kind]["due"] = int(due or 0)
        out[kind]["oldest_pending_age_s"] = round(stamp - oldest, 1) if oldest is not None else None
    for kind, error, count in conn.execute(
            "SELECT kind, substr(last_error, 1, 80), COUNT(*) FROM deferred_work"
            " WHERE state IN ('failed', 'dead') AND last_error IS NOT NULL GROUP BY kind, 2 ORDER BY 3 DESC"):
        if len(out[kind]["errors"]) < 5:
            out[kind]["errors"][error] = count
    return out


def enqueue_after_catalog_write(conn: Any, track_ids: Sequence[int], *, now: float | None = None) -> int:
    """The catalog insert's hook: enrichment and vectors for the tracks, covers for their albums."""
    return (enqueue_for_tracks(conn, track_ids, now=now)
            + _enqueue_selected(conn, ("covers",), "album", _ALBUMS_OF_TRACKS, track_ids, priority="normal", now=now))


def retry_counts(conn: Any, *, now: float | None = None) -> tuple[int, int]:
    """(failed items due for retry, stale in-progress claims) for the retry schedule's decision."""
    moment = _now(now)
    due = conn.execute("SELECT COUNT(*) FROM deferred_work WHERE state = 'failed' AND not_before <= ?",
                       (moment,)).fetchone()[0]
    stale = conn.execute("SELECT COUNT(*) FROM deferred_work WHERE state = 'in_progress' AND claimed_at < ?",
                         (moment - STALE_CLAIM_S,)).fetchone()[0]
    return due, stale
