"""The PostgreSQL side of the catalog seam: a psycopg 3 connection with the small sqlite3-like API the catalog uses.

The catalog's SQL is written once in portable SQLite form (`?` placeholders, ON CONFLICT upserts, RETURNING);
this module rewrites the few SQLite spellings that remain (timestamps, json_group_array) and translates the
migrations' DDL (INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, BLOB -> BYTEA, TEXT compared bytewise like SQLite,
triggers -> trigger functions).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Writers take this transaction-scoped advisory lock, the counterpart of SQLite's BEGIN IMMEDIATE: batches of
# upserts over shared artists/albums/genres never deadlock or interleave, whichever host they come from.
WRITER_LOCK_KEY = 0x50_4E_49_51  # arbitrary, fixed across versions
CONNECT_TIMEOUT_S = 10

_SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_PG_NOW = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_SQLITE_DATETIME_NOW = "datetime('now')"
_PG_DATETIME_NOW = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
_JSON_GROUP_ARRAY = re.compile(r"json_group_array\(([^()]*)\)")


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable catalog URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


@lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """SQLite-flavoured catalog SQL -> PostgreSQL with psycopg placeholders."""
    out = sql.replace(_SQLITE_NOW, _PG_NOW).replace(_SQLITE_DATETIME_NOW, _PG_DATETIME_NOW)
    out = _JSON_GROUP_ARRAY.sub(r"COALESCE(json_agg(\1), '[]'::json)::text", out)
    out = out.replace("json_object(", "json_build_object(")
    return _placeholders(out)


def _placeholders(sql: str) -> str:
    """`?` outside string literals -> %s; every literal % doubled (psycopg always parses the query)."""
    result, quote = [], None
    for ch in sql:
        if quote:
            result.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            result.append(ch)
        elif ch == "?":
            result.append("%s")
        elif ch == "%":
            result.append("%%")
        else:
            result.append(ch)
    return "".join(result)


# ------------------------------------------------------------------------------------------ DDL

_TRIGGER = re.compile(
    r"CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+(AFTER|BEFORE)\s+(DELETE|INSERT|UPDATE)\s+ON\s+(\w+)\s+"
    r"(?:FOR\s+EACH\s+ROW\s+)?BEGIN\s+(.*)\s+END\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _strip_comments(sql: str) -> str:
    lines = []
    for line in sql.splitlines():
        cut, quote = None, False
        for i, ch in enumerate(line):
            if ch == "'":
                quote = not quote
            elif not quote and line.startswith("--", i):
                cut = i
                break
        lines.append(line if cut is None else line[:cut])
    return "\n".join(lines)


def translate_ddl(statement: str) -> list[str]:
    """One SQLite migration statement -> the PostgreSQL statements doing the same."""
    sql = _strip_comments(statement).strip().rstrip(";")
    trigger = _TRIGGER.match(sql + ";")
    if trigger:
        name, when, event, table, body = trigger.groups()
        body = translate(body.strip().rstrip(";")).replace("%%", "%")
        return [
            f"CREATE OR REPLACE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; "
            f"RETURN {'OLD' if event.upper() == 'DELETE' else 'NEW'}; END $$",
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"CREATE TRIGGER {name} {when} {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_fn()",
        ]
    sql = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?", "BIGSERIAL PRIMARY KEY", sql, flags=re.IGNORECASE)
    sql = re.sub(r"\bWITHOUT\s+ROWID\b", "", sql, flags=re.IGNORECASE)
    sql = re.sub(r"\bCOLLATE\s+(BINARY|NOCASE|RTRIM)\b", "", sql, flags=re.IGNORECASE)  # text is bytewise below
    sql = _outside_literals(sql, [
        (r"\bINTEGER\b", "BIGINT"),
        (r"\bREAL\b", "DOUBLE PRECISION"),
        (r"\bBLOB\b", "BYTEA"),
        (r"\bTEXT\b", 'TEXT COLLATE "C"'),
    ])  # fmt: skip
    return [translate(sql).replace("%%", "%")]


def _outside_literals(sql: str, rules: list[tuple[str, str]]) -> str:
    parts = re.split(r"('(?:[^']|'')*')", sql)
    for i in range(0, len(parts), 2):
        for pattern, replacement in rules:
            parts[i] = re.sub(pattern, replacement, parts[i], flags=re.IGNORECASE)
    return "".join(parts)


# ------------------------------------------------------------------------------------------ rows


_row_classes: dict[tuple[str, ...], type] = {}


class Row(tuple):
    """A result row readable by position and by column name, like sqlite3.Row."""

    __slots__ = ()
    _positions: dict[str, int] = {}

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._positions[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._positions)


def _row_factory(cursor: Any):
    description = cursor.description
    if description is None:
        return tuple
    names = tuple(column.name for column in description)
    cls = _row_classes.get(names)
    if cls is None:
        cls = type("Row", (Row,), {"__slots__": (), "_positions": {n: i for i, n in enumerate(names)}})
        _row_classes[names] = cls
    return cls


# ------------------------------------------------------------------------------------------ connection


class PgConnection:
    """psycopg 3 in autocommit mode; transactions are explicit (db.transaction), as with the SQLite connection."""

    dialect = "postgresql"

    def __init__(self, raw: Any, url: str) -> None:
        self.raw = raw
        self.url = url
        self.total_changes = 0

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Any = ()) -> Any:
        upper = sql.strip().upper()
        if upper == "BEGIN IMMEDIATE":  # one round trip: BEGIN and the writer lock
            return self.raw.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})")
        if upper == "BEGIN":
            return self.raw.execute("BEGIN")
        cursor = self.raw.cursor()
        cursor.execute(translate(sql), list(params) if params is not None else [])
        if cursor.rowcount > 0 and cursor.description is None:
            self.total_changes += cursor.rowcount
        return cursor

    def executemany(self, sql: str, seq: Any) -> Any:
        # psycopg prepares the statement once and pipelines the rows: measured 4-9x faster here than one
        # multi-row INSERT per chunk, whose parse and plan grow with the rows
        rows = [list(p) for p in seq]
        cursor = self.raw.cursor()
        if rows:
            cursor.executemany(translate(sql), rows)
            self.total_changes += max(cursor.rowcount, 0)
        return cursor

    def commit(self) -> None:
        if self.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(url: str) -> PgConnection:
    """Open the catalog database named by a postgresql:// URL (autocommit, bytewise text, numbers as float)."""
    import psycopg
    from psycopg.adapt import Dumper
    from psycopg.types.numeric import FloatLoader

    raw = psycopg.connect(_libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                          row_factory=_row_factory, application_name="soniquebay")

    class BoolAsInt(Dumper):
        oid = psycopg.postgres.types["int8"].oid

        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    # Same durability as the SQLite catalog's WAL + synchronous=NORMAL: a server crash may drop the last
    # transactions (never half of one); every batch commit then costs no flush wait
    raw.execute("SET synchronous_commit = off")
    raw.adapters.register_dumper(bool, BoolAsInt)
    # SUM/AVG over integers are numeric in PostgreSQL: the catalog code expects Python numbers as from SQLite
    raw.adapters.register_loader("numeric", FloatLoader)
    return PgConnection(raw, url)


def _libpq_url(url: str) -> str:
    """postgresql+psycopg://... (SQLAlchemy spelling) is accepted too."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def table_exists(conn: PgConnection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()
    return bool(row[0])


def table_columns(conn: PgConnection, name: str) -> list[str]:
    # pg_attribute, not information_schema.columns: the latter costs milliseconds (it sits on the search path)
    return [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum", (name,))]


def sync_sequences(conn: PgConnection) -> None:
    """Move every id sequence past the largest id present (after rows were written with explicit ids)."""
    rows = conn.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " WHERE c.table_schema = current_schema() AND c.column_default LIKE 'nextval(%'").fetchall()
    for table, column in rows:
        conn.raw.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
            f" GREATEST((SELECT MAX({column}) FROM {table}), 1), (SELECT MAX({column}) FROM {table}) IS NOT NULL)")


def with_search_path(url: str, schema: str) -> str:
    """The URL with `schema` as the connection's search_path (libpq `options`)."""
    from urllib.parse import quote

    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    return url + ("&" if "?" in url else "?") + option


@contextmanager
def scratch_schema(url: str, prefix: str = "soniquebay_scratch") -> Iterator[str]:
    """A throwaway schema in the database of `url` (benchmarks): yields a URL using it, drops it after."""
    import os
    import uuid

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = connect(url)
    try:
        conn.raw.execute(f'CREATE SCHEMA "{name}"')
        yield with_search_path(url, name)
    finally:
        conn.raw.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.close()
