"""The shard count a catalog was built with: recorded once, checked on every open, re-sharded when it changed."""

from __future__ import annotations

import logging
from typing import Any

from soniquebay_assets.catalog.db import transaction
from soniquebay_assets.domain.layout import SHARD_COUNT, SHARD_KEYS, shard_for

log = logging.getLogger(__name__)


class ShardLayoutError(RuntimeError):
    """The catalog's shards cannot be brought to this version's shard count; the message says what to do."""


def recorded_shard_count(conn: Any) -> int | None:
    row = conn.execute("SELECT value FROM catalog_settings WHERE name = 'shard_count'").fetchone()
    return int(row[0]) if row else None


def ensure_shard_layout(conn: Any) -> int:
    """Record the shard count of a new catalog; re-shard one built with another count (a catalog from before the
    count was recorded is recognized by shard keys beyond this version's range). Returns the files re-sharded."""
    if recorded_shard_count(conn) == SHARD_COUNT:
        return 0
    with transaction(conn):
        recorded = recorded_shard_count(conn)  # again under the write lock: another process may have done it
        if recorded == SHARD_COUNT:
            return 0
        highest = conn.execute("SELECT MAX(shard) FROM files").fetchone()[0]
        moved = 0
        if recorded is not None or (highest is not None and highest > SHARD_KEYS[-1]):
            moved = _reshard(conn, recorded)
        conn.execute(
            "INSERT INTO catalog_settings(name, value) VALUES ('shard_count', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (str(SHARD_COUNT),))
    return moved


def _reshard(conn: Any, recorded: int | None) -> int:
    """Recompute every file's shard from its root and album folder, as the walker does, and follow it with
    tracks, errors and deferred work; per-shard digests are dropped so the next scan re-inventories (no file
    is re-read: sizes and mtimes still match)."""
    rows = conn.execute("SELECT file_id, root, album_folder, shard FROM files").fetchall()
    changes = [(shard_for(root + "/" + folder), file_id) for file_id, root, folder, old in rows
               if shard_for(root + "/" + folder) != old]
    bad = [file_id for new, file_id in changes if new not in SHARD_KEYS]
    if bad:
        raise ShardLayoutError(f"{len(bad)} files get a shard outside 00..{SHARD_KEYS[-1]}; move the catalog "
                               "aside and run `soniquebay scan` to rebuild it")
    conn.executemany("UPDATE files SET shard = ? WHERE file_id = ?", changes)
    conn.execute("UPDATE tracks SET shard = (SELECT f.shard FROM files f WHERE f.file_id = tracks.file_id)")
    conn.execute("UPDATE scan_errors SET shard = (SELECT f.shard FROM files f WHERE f.path = scan_errors.path) "
                 "WHERE EXISTS (SELECT 1 FROM files f WHERE f.path = scan_errors.path)")
    conn.execute("UPDATE deferred_work SET shard = (SELECT t.shard FROM tracks t WHERE t.track_id = "
                 "deferred_work.entity_id) WHERE entity_type = 'track' AND EXISTS "
                 "(SELECT 1 FROM tracks t WHERE t.track_id = deferred_work.entity_id)")
    conn.execute("UPDATE deferred_work SET shard = (SELECT MIN(t.shard) FROM tracks t WHERE t.album_id = "
                 "deferred_work.entity_id) WHERE entity_type = 'album' AND EXISTS "
                 "(SELECT 1 FROM tracks t WHERE t.album_id = deferred_work.entity_id)")
    leftover = [(f"{int(shard, 16) % SHARD_COUNT:02x}", work_id) for work_id, shard in conn.execute(
        "SELECT work_id, shard FROM deferred_work").fetchall() if shard not in SHARD_KEYS]
    conn.executemany("UPDATE deferred_work SET shard = ? WHERE work_id = ?", leftover)
    conn.execute("DELETE FROM shard_digests")
    log.warning("catalog re-sharded from %s to %d shards: %d of %d files changed shard; the next scan "
                "re-inventories every shard", recorded or "more", SHARD_COUNT, len(changes), len(rows))
    return len(changes)
