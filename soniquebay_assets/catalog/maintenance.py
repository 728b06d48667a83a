"""Database upkeep statements: integrity check, statistics, space reclaim."""

from __future__ import annotations

from typing import Any

from soniquebay_assets.catalog import db


def integrity_problems(conn: Any, limit: int = 20) -> list[str]:
    """Empty when `PRAGMA integrity_check` says ok (PostgreSQL checks its own pages: nothing to ask)."""
    if db.dialect_of(conn) == db.POSTGRESQL:
        return []
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows[:limit]


def analyze(conn: Any) -> None:
    conn.execute("ANALYZE")


def vacuum_if_worth_it(conn: Any, *, min_free_share: float = 0.10) -> str:
    """VACUUM rewrites the whole file and blocks writers meanwhile: only when over 10% of pages are free."""
    if db.dialect_of(conn) == db.POSTGRESQL:
        return "not needed (PostgreSQL autovacuum reclaims space)"
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if not pages or free / pages < min_free_share:
        return f"not needed ({free} of {pages} pages free)"
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        return f"done ({free} of {pages} pages were free)"
    except Exception as exc:  # another process holds the database: skip until tomorrow, never fail upkeep
        return f"skipped: {exc}"
