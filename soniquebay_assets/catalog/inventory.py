"""Repository for the file inventory, raw tags and per-file errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.catalog.db import execute_rows, transaction

NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


@dataclass(frozen=True)
class KnownFile:
    file_id: int
    path: str
    root: str
    shard: str
    size: int
    mtime_ns: int
    fingerprint: str | None
    stage: str


def known_files(conn: Any) -> dict[str, KnownFile]:
    """Every inventoried file by display path."""
    rows = conn.execute(
        "SELECT file_id, path, root, shard, size, mtime_ns, fingerprint, stage FROM files"
    ).fetchall()
    return {r[1]: KnownFile(*r) for r in rows}


def stored_shard_digests(conn: Any) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT shard, digest FROM shard_digests")}


def unfinished_shards(conn: Any) -> set[str]:
    """Shards with files whose chain did not finish (an interrupted or failed run)."""
    return {r[0] for r in conn.execute("SELECT DISTINCT shard FROM files WHERE stage IN ('inventoried', 'extracted')")}


def shards_under_roots(conn: Any, roots: Sequence[str]) -> set[str]:
    if not roots:
        return set()
    marks = ",".join("?" * len(roots))
    return {r[0] for r in conn.execute(f"SELECT DISTINCT shard FROM files WHERE root IN ({marks})", list(roots))}


def drop_empty_shard_digests(conn: Any, shards: Sequence[str]) -> None:
    execute_rows(conn, "DELETE FROM shard_digests WHERE shard = ? "
                 "AND NOT EXISTS (SELECT 1 FROM files WHERE files.shard = shard_digests.shard)", [(s,) for s in shards])


def save_shard_digests(conn: Any, digests: dict[str, tuple[str, int]]) -> None:
    execute_rows(
        conn,
        f"INSERT INTO shard_digests(shard, digest, file_count, updated_at) VALUES (?, ?, ?, {NOW}) "
        "ON CONFLICT(shard) DO UPDATE SET digest = excluded.digest, file_count = excluded.file_count, "
        "updated_at = excluded.updated_at",
        [(shard, digest, count) for shard, (digest, count) in digests.items()],
    )


def insert_files(conn: Any, rows: Sequence[tuple]) -> None:
    """rows: (path, raw_path, root, shard, album_folder, size, mtime_ns, fingerprint)."""
    first_by_path: dict[str, tuple] = {}
    for row in rows:  # a root listed twice finds its files twice: the first row stands, as if run one by one
        first_by_path.setdefault(row[0], row)
    execute_rows(
        conn,
        "INSERT INTO files(path, raw_path, root, shard, album_folder, size, mtime_ns, fingerprint, stage) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'inventoried') "
        f"ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
        f"stage = 'inventoried', last_changed = {NOW}",
        list(first_by_path.values()),
    )


def mark_changed(conn: Any, rows: Sequence[tuple[int, int, int]]) -> None:
    """rows: (size, mtime_ns, file_id): the file must be re-read."""
    execute_rows(
        conn,
        f"UPDATE files SET size = ?, mtime_ns = ?, fingerprint = NULL, stage = 'inventoried', last_changed = {NOW} "
        "WHERE file_id = ?",
        rows,
    )


def apply_move(conn: Any, file_id: int, path: str, raw_path: bytes | None, root: str, shard: str,
               album_folder: str, mtime_ns: int) -> None:
    """A file whose content is unchanged moved: keep its ids, re-derive its album from the new folder."""
    conn.execute(
        "UPDATE files SET path = ?, raw_path = ?, root = ?, shard = ?, album_folder = ?, mtime_ns = ?, "
        f"stage = CASE WHEN stage = 'cataloged' THEN 'extracted' ELSE stage END, last_changed = {NOW} "
        "WHERE file_id = ?",
        (path, raw_path, root, shard, album_folder, mtime_ns, file_id),
    )
    conn.execute(f"UPDATE tracks SET path = ?, shard = ?, mtime_ns = ?, updated_at = {NOW} WHERE file_id = ?",
                 (path, shard, mtime_ns, file_id))


def delete_files(conn: Any, file_ids: Iterable[int]) -> int:
    """Remove files and (by cascade) their tracks, raw tags and everything hanging off the track."""
    ids = [(i,) for i in file_ids]
    execute_rows(conn, "DELETE FROM tracks WHERE file_id = ?", ids)
    execute_rows(conn, "DELETE FROM files WHERE file_id = ?", ids)
    return len(ids)


@dataclass(frozen=True)
class ErrorRecord:
    """One per-file problem of a stage: a short stable `reason` (the UI counts by it), a `detail` saying what to
    do; severity 'warning' when the file still got a (partial) result."""

    path: str
    stage: str
    reason: str
    detail: str
    shard: str | None = None
    severity: str = "error"


def record_errors(conn: Any, errors: Sequence[ErrorRecord]) -> None:
    """One scan_errors row per (path, stage), counting repeats."""
    conn.executemany(
        "INSERT INTO scan_errors(path, stage, reason, detail, shard, severity) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(path, stage) DO UPDATE SET reason = excluded.reason, detail = excluded.detail, "
        f"shard = excluded.shard, severity = excluded.severity, occurrences = scan_errors.occurrences + 1, last_seen = {NOW}",
        [(e.path, e.stage, e.reason, e.detail, e.shard, e.severity) for e in errors],
    )


def error_paths(conn: Any, stage: str, shards: Sequence[str]) -> set[str]:
    marks = ",".join("?" * len(shards))
    return {r[0] for r in conn.execute(
        f"SELECT path FROM scan_errors WHERE stage = ? AND shard IN ({marks})", [stage, *shards])}


def clear_errors(conn: Any, paths: Iterable[str], stages: Sequence[str]) -> None:
    marks = ",".join("?" * len(stages))
    execute_rows(conn, f"DELETE FROM scan_errors WHERE path = ? AND stage IN ({marks})",
                 [(p, *stages) for p in paths])


def clear_walk_errors_except(conn: Any, current: set[str]) -> None:
    """Inventory problems are re-derived by every full walk: drop the ones that went away."""
    stale = [r[0] for r in conn.execute("SELECT path FROM scan_errors WHERE stage = 'inventory'")
             if r[0] not in current]
    execute_rows(conn, "DELETE FROM scan_errors WHERE stage = 'inventory' AND path = ?", [(p,) for p in stale])


def files_to_extract(conn: Any, shards: Sequence[str]) -> list[tuple[int, str, bytes | None, str, int, str]]:
    """(file_id, path, raw_path, shard, size, root) of files whose tags must be (re)read."""
    marks = ",".join("?" * len(shards))
    return conn.execute(
        f"SELECT file_id, path, raw_path, shard, size, root FROM files WHERE stage = 'inventoried' "
        f"AND shard IN ({marks}) "
        "ORDER BY path",
        list(shards),
    ).fetchall()


def save_extracted(conn: Any, rows: Sequence[tuple[int, str, float, str | None]]) -> None:
    """rows: (file_id, tag payload JSON, quality score, fingerprint)."""
    execute_rows(
        conn,
        "INSERT INTO raw_tags(file_id, payload, quality_score) VALUES (?, ?, ?) "
        f"ON CONFLICT(file_id) DO UPDATE SET payload = excluded.payload, quality_score = excluded.quality_score, "
        f"extracted_at = {NOW}",
        [(fid, payload, score) for fid, payload, score, _ in rows],
    )
    execute_rows(
        conn, "UPDATE files SET stage = 'extracted', fingerprint = COALESCE(?, fingerprint) WHERE file_id = ?",
        [(fp, fid) for fid, _, _, fp in rows],
    )


def mark_failed_paths(conn: Any, paths: Sequence[str]) -> None:
    execute_rows(conn, "UPDATE files SET stage = 'error' WHERE path = ?", [(p,) for p in paths])


def mark_extract_failed(conn: Any, file_ids: Sequence[int]) -> None:
    execute_rows(conn, "UPDATE files SET stage = 'error' WHERE file_id = ?", [(i,) for i in file_ids])
    execute_rows(conn, "DELETE FROM tracks WHERE file_id = ?", [(i,) for i in file_ids])


def files_to_catalog(conn: Any, shards: Sequence[str]) -> list[dict[str, Any]]:
    """Extracted files of these shards with their raw tags and file facts."""
    marks = ",".join("?" * len(shards))
    rows = conn.execute(
        "SELECT f.file_id, f.path, f.root, f.shard, f.album_folder, f.size, f.mtime_ns, f.fingerprint, r.payload "
        f"FROM files f JOIN raw_tags r USING (file_id) WHERE f.stage = 'extracted' AND f.shard IN ({marks}) "
        "ORDER BY f.path",
        list(shards),
    ).fetchall()
    keys = ("file_id", "path", "root", "shard", "album_folder", "size", "mtime_ns", "fingerprint")
    out = []
    for row in rows:
        item = dict(zip(keys, row[:8], strict=True))
        item["tags"] = json.loads(row[8])
        out.append(item)
    return out


def start_scan(conn: Any, roots: Sequence[str], origin: str) -> int:
    with transaction(conn):
        row = conn.execute(
            f"INSERT INTO scans(started_at, roots, origin) VALUES ({NOW}, ?, ?) RETURNING scan_id",
            (json.dumps(list(roots)), origin),
        ).fetchone()
    return int(row[0])


def finish_scan(conn: Any, scan_id: int, stats: dict[str, Any]) -> None:
    with transaction(conn):
        conn.execute(f"UPDATE scans SET finished_at = {NOW}, stats = ? WHERE scan_id = ?",
                     (json.dumps(stats), scan_id))
