"""Walk snapshots in the catalog: the walk a sensor or the CLI made, read back by the run's inventory step.

Kept in the catalog (not in a host's data dir) so that the inventory step may run on any worker host.
The table is created on first use, like the vector table.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from soniquebay_assets.catalog import db

KEEP_LAST = 10
REFERENCE_PREFIX = "catalog:walk_snapshots/"

_DDL = (
    "CREATE TABLE IF NOT EXISTS walk_snapshots ("
    " snapshot_id INTEGER PRIMARY KEY,"
    " created_at REAL NOT NULL,"             # unix seconds
    " file_count INTEGER NOT NULL,"
    " payload BLOB NOT NULL)"                # zlib-compressed JSON of the walk
)


def _ensure_table(conn: Any) -> None:
    if not db.table_exists(conn, "walk_snapshots"):
        db.create_table(conn, _DDL)


def save(conn: Any, payload_json: str, file_count: int) -> str:
    """Store one walk; returns the reference the run config carries. Only the last ten are kept."""
    _ensure_table(conn)
    blob = zlib.compress(payload_json.encode("utf-8"), 3)
    with db.transaction(conn):
        row = conn.execute(
            "INSERT INTO walk_snapshots(created_at, file_count, payload) VALUES (?, ?, ?) RETURNING snapshot_id",
            (time.time(), int(file_count), blob),
        ).fetchone()
        conn.execute("DELETE FROM walk_snapshots WHERE snapshot_id <= ?", (int(row[0]) - KEEP_LAST,))
    return f"{REFERENCE_PREFIX}{int(row[0])}"


def is_reference(value: str) -> bool:
    return str(value).startswith(REFERENCE_PREFIX)


def load(conn: Any, reference: str) -> str:
    """The walk JSON of a reference made by save(); a clear error when it was pruned or never existed."""
    snapshot_id = int(str(reference)[len(REFERENCE_PREFIX):])
    row = None
    if db.table_exists(conn, "walk_snapshots"):
        row = conn.execute("SELECT payload FROM walk_snapshots WHERE snapshot_id = ?", (snapshot_id,)).fetchone()
    if row is None:
        raise LookupError(f"walk snapshot {reference} is not in the catalog (only the last {KEEP_LAST} are kept): "
                          "run the scan again")
    return zlib.decompress(bytes(row[0])).decode("utf-8")
