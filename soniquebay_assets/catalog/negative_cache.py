"""Negative caches of remote lookups (cover_misses, external_misses): one row per entity and source, with backoff;
and the timestamps and lifetimes every cached answer of a remote service is stored with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

DAY = 86_400
# A failure (timeout, 5xx, rate limit, unusable answer) is asked again sooner than a miss, doubling per attempt.
FAILURE_TTL_BASE_S = 3_600
FAILURE_TTL_MAX_S = 7 * DAY


def iso(moment: datetime) -> str:
    """The catalog's timestamp text: UTC, milliseconds, `Z` (sorts and compares as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str | None) -> datetime | None:
    """A timestamp written by iso() (or any ISO 8601 text); None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def expiry(now: datetime, ttl_s: float) -> str:
    """iso() of the moment `ttl_s` seconds after `now`: when a cached answer is asked again."""
    return iso(now + timedelta(seconds=ttl_s))


def failure_ttl_s(attempts: int) -> int:
    """How long the `attempts`-th failure in a row is believed: 1 h, 2 h, 4 h, ... at most a week."""
    return min(FAILURE_TTL_MAX_S, FAILURE_TTL_BASE_S * (2 ** max(0, attempts - 1)))

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
