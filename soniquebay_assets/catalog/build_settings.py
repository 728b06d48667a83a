"""How a catalog was built (table catalog_settings), checked on every open: the shard count (re-shard when it
changed) and the version of the tag value rules (re-read every file's tags once when they changed)."""

from __future__ import annotations

import logging
from typing import Any

from soniquebay_assets.catalog.transactions import transaction
from soniquebay_assets.domain.layout import SHARD_COUNT, SHARD_KEYS, shard_for
from soniquebay_assets.domain.tag_values import TAG_RULES_VERSION

log = logging.getLogger(__name__)


class ShardLayoutError(RuntimeError):
    """The catalog's shards cannot be brought to this version's shard count; the message says what to do."""


def check_catalog_settings(conn: Any) -> None:
    """Everything open_catalog brings in line after the migrations."""
    ensure_shard_layout(conn)
    ensure_tag_rules(conn)


def _setting(conn: Any, name: str) -> str | None:
    row = conn.execute("SELECT value FROM catalog_settings WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def _record(conn: Any, name: str, value: object) -> None:
    conn.execute("INSERT INTO catalog_settings(name, value) VALUES (?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, str(value)))


def recorded_shard_count(conn: Any) -> int | None:
    value = _setting(conn, "shard_count")
    return int(value) if value is not None else None


def ensure_tag_rules(conn: Any) -> int:
    """A catalog whose tags were read under older value rules (e.g. before placeholders such as "<Unknown>"
    became missing values) has every read file queued for one new tag read at the next scan; track ids, analysis
    and covers stay (same file ids, same audio). Returns the files queued."""
    if _setting(conn, "tag_rules_version") == str(TAG_RULES_VERSION):
        return 0
    with transaction(conn):
        recorded = _setting(conn, "tag_rules_version")
        if recorded == str(TAG_RULES_VERSION):
            return 0
        queued = 0
        if recorded is not None or conn.execute("SELECT 1 FROM raw_tags LIMIT 1").fetchone():
            queued = conn.execute("UPDATE files SET stage = 'inventoried' "
                                  "WHERE stage IN ('extracted', 'cataloged')").rowcount
        _record(conn, "tag_rules_version", TAG_RULES_VERSION)
    if queued:
        log.warning("tag value rules changed (version %s -> %s): %d files will have their tags read again at the "
                    "next scan", recorded or "unrecorded", TAG_RULES_VERSION, queued)
    return queued


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
        _record(conn, "shard_count", SHARD_COUNT)
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
