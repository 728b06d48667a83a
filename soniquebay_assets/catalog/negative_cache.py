"""Negative caches of remote lookups (cover_misses, external_misses): one row per entity and source, with backoff."""

from __future__ import annotations

from typing import Any

# Tables of the same shape: (entity_type, entity_id, source) key, kind, reason, attempts, checked_at, expires_at.
TABLES = ("cover_misses", "external_misses")


def record_miss(conn: Any, table: str, entity_type: str, entity_id: int, source: str, *, kind: str, reason: str,
                now: str, expires_at: str) -> None:
    """Insert a miss, or count one more attempt on the existing row with its new reason and expiry."""
    if table not in TABLES:
        raise ValueError(f"{table!r} is not a negative cache table ({', '.join(TABLES)})")
    conn.execute(
        f"""
        INSERT INTO {table}(entity_type, entity_id, source, kind, reason, attempts, checked_at, expires_at)
        VALUES (?, ?, ?, ?, ?, 1, ?, ?)
        ON CONFLICT (entity_type, entity_id, source) DO UPDATE SET
            kind = excluded.kind, reason = excluded.reason, attempts = {table}.attempts + 1,
            checked_at = excluded.checked_at, expires_at = excluded.expires_at
        """,
        (entity_type, entity_id, source, kind, reason, now, expires_at),
    )
