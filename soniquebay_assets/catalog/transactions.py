"""The all-or-nothing write every catalog module uses (db.py offers it with the connections it opens)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def transaction(conn: Any, *, immediate: bool = True) -> Iterator[Any]:
    """All-or-nothing write: BEGIN IMMEDIATE takes the write lock up front so waits honour busy_timeout."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
