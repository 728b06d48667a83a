"""The PostgreSQL side of the catalog seam: a psycopg 3 connection with the small sqlite3-like API the catalog uses.

The catalog's SQL is written once in portable SQLite form (`?` placeholders, ON CONFLICT upserts, RETURNING);
this module rewrites the few SQLite spellings that remain (timestamps, json_group_array) and translates the
migrations' DDL (INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, BLOB -> BYTEA, TEXT compared bytewise like SQLite,
triggers -> trigger functions).
"""

from __future__ import annotations

import operator
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
def translate(sql: str, placeholder: str = "%s") -> str:
    """SQLite-flavoured catalog SQL -> PostgreSQL with psycopg placeholders (%b: values sent in binary)."""
    out = sql.replace(_SQLITE_NOW, _PG_NOW).replace(_SQLITE_DATETIME_NOW, _PG_DATETIME_NOW)
    out = _JSON_GROUP_ARRAY.sub(r"COALESCE(json_agg(\1), '[]'::json)::text", out)
    out = out.replace("json_object(", "json_build_object(")
    return _placeholders(out, placeholder)


def _placeholders(sql: str, placeholder: str = "%s") -> str:
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
            result.append(placeholder)
        elif ch == "%":
            result.append("%%")
        else:
            result.append(ch)
    return "".join(result)


# ------------------------------------------------------------------------------------------ one statement per batch

_ROWS_ALIAS = "batch"
_INT8_RANGE = (-(2**63), 2**63 - 1)
_EXACT_IN_DOUBLE = 2**53  # integers beside floats travel as doubles: only while that keeps them exact


def _scan(sql: str) -> list[tuple[int, str, int]]:
    """(index, char, parenthesis depth) of every character outside string literals and quoted names."""
    out, depth, quote = [], 0, None
    for i, ch in enumerate(sql):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        out.append((i, ch, depth if ch != "(" else depth - 1))
    return out


def _top_level_word(sql: str, scanned: list[tuple[int, str, int]], word: str, start: int = 0) -> int:
    """Index of the first depth-0 keyword `word` at or after `start`, else -1."""
    upper, n = sql.upper(), len(word)
    for i, _ch, depth in scanned:
        if i < start or depth != 0 or upper[i:i + n] != word:
            continue
        before = upper[i - 1] if i else " "
        after = upper[i + n] if i + n < len(upper) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return i
    return -1


@lru_cache(maxsize=512)
def _rows_shape(sql: str) -> tuple[str, int, int, tuple[int, ...], tuple[str, ...]] | None:
    """How to run `sql` over many rows at once: (kind, cut, end, `?` positions, conflict columns' params).

    INSERT ... VALUES (exprs) becomes INSERT ... SELECT exprs FROM <rows>; UPDATE and DELETE get <rows> as
    FROM / USING before their WHERE. None for any other shape (the caller then runs the statement per row)."""
    scanned = _scan(sql)
    marks = tuple(i for i, ch, _ in scanned if ch == "?")
    kind = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    if kind == "INSERT":
        values = _top_level_word(sql, scanned, "VALUES")
        if values < 0 or _top_level_word(sql, scanned, "SELECT") >= 0:
            return None
        opening = sql.index("(", values)
        closing = next((i for i, ch, depth in scanned if i > opening and ch == ")" and depth == 0), -1)
        if closing < 0 or sql[closing + 1:].lstrip().startswith(","):
            return None  # several VALUES rows
        return kind, values, closing, marks, _conflict_params(sql, scanned, values, opening, closing)
    if kind in ("UPDATE", "DELETE"):
        where = _top_level_word(sql, scanned, "WHERE")
        clash = "FROM" if kind == "UPDATE" else "USING"
        start = _top_level_word(sql, scanned, "SET") if kind == "UPDATE" else _top_level_word(sql, scanned, "FROM") + 4
        if where < 0 or _top_level_word(sql, scanned, clash, max(start, 0)) >= 0 or \
                _top_level_word(sql, scanned, "RETURNING") >= 0:
            return None
        return kind, where, where, marks, ()
    return None


def _conflict_params(sql: str, scanned, values: int, opening: int, closing: int) -> tuple[str, ...]:
    """For INSERT ... ON CONFLICT (cols) DO UPDATE: which `?` (by number) each conflict column takes.
    ('?',) when it cannot tell: one statement may then not update a row twice, so it runs per row."""
    upper = sql.upper()
    conflict = _top_level_word(sql, scanned, "ON", closing)
    if conflict < 0 or "DO UPDATE" not in " ".join(upper[conflict:].split()):
        return ()
    target = re.match(r"ON\s+CONFLICT\s*\(([^()]*)\)", sql[conflict:], re.IGNORECASE)
    columns = re.match(r"\s*INSERT\s+INTO\s+\w+\s*\(([^()]*)\)", sql, re.IGNORECASE)
    if not target or not columns:
        return ("?",)
    names = [c.strip().lower() for c in columns.group(1).split(",")]
    exprs = _split_top_level(sql[opening + 1:closing])
    if len(names) != len(exprs):
        return ("?",)
    numbers, seen = {}, 0
    for name, expr in zip(names, exprs, strict=True):
        if expr.strip() == "?":
            numbers[name] = str(seen)
        seen += expr.count("?")
    keys = [c.strip().lower() for c in target.group(1).split(",")]
    if any(k not in numbers for k in keys):
        return ("?",)
    return tuple(numbers[k] for k in keys)


def _split_top_level(text: str) -> list[str]:
    parts, start = [], 0
    for i, ch, depth in _scan(text):
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _array_column(values: list[Any]) -> tuple[str | None, list[Any]] | None:
    """(PostgreSQL array type, values) for one parameter column; type None when every value is NULL;
    None when the values mix kinds an array cannot hold."""
    kinds = {type(v) for v in values}
    kinds.discard(type(None))
    if not kinds:
        return None, values
    if kinds == {str}:
        return "text", values
    if kinds == {float}:
        return "double precision", values
    present = [v for v in values if v is not None]
    if all(isinstance(v, int) for v in present):  # bool is an int
        if min(present) < _INT8_RANGE[0] or max(present) > _INT8_RANGE[1]:
            return None
        return "bigint", values if kinds == {int} else [None if v is None else int(v) for v in values]
    if all(isinstance(v, float) or (isinstance(v, int) and abs(v) <= _EXACT_IN_DOUBLE) for v in present):
        return "double precision", [None if v is None else float(v) for v in values]
    if all(isinstance(v, bytes | bytearray | memoryview) for v in present):
        return "bytea", [None if v is None else bytes(v) for v in values]
    return None


def rows_statement(sql: str, rows: list[tuple]) -> tuple[str, list[Any]] | None:
    """`sql` (portable, one `?` per value of a row) as ONE statement over all `rows`: every `?` reads its
    column of the rows, passed as arrays and unnest()ed. Same effect as running it once per row provided no two
    rows touch the same target row. None when that cannot be done (shape, mixed value kinds, a conflict key
    repeated): run it per row then."""
    shape = _rows_shape(sql)
    if shape is None:
        return None
    kind, cut, end, marks, conflict = shape
    width = len(marks)
    if width == 0 or any(len(r) != width for r in rows):
        return None
    if conflict == ("?",):
        return None
    if conflict:
        key_of = operator.itemgetter(*(int(n) for n in conflict))
        if len(set(map(key_of, rows))) != len(rows):
            return None
    columns = []
    for values in zip(*rows, strict=True):
        column = _array_column(list(values))
        if column is None:
            return None
        columns.append(column)
    types = tuple(t for t, _ in columns)
    if not any(types):
        return None  # nothing to unnest: no row count
    params = [values for t, values in columns if t is not None]
    return _rows_sql(sql, types), params


@lru_cache(maxsize=512)
def _rows_sql(sql: str, types: tuple[str | None, ...]) -> str:
    kind, cut, end, marks, _ = _rows_shape(sql)  # type: ignore[misc]
    names = dict(zip(marks, (f"{_ROWS_ALIAS}.p{n}" if t else "NULL" for n, t in enumerate(types)), strict=True))

    def part(first: int, last: int) -> str:
        return "".join(names.get(i, sql[i]) for i in range(first, last))

    arrays = ", ".join(f"?::{t}[]" for t in types if t)
    aliases = ", ".join(f"p{n}" for n, t in enumerate(types) if t)
    source = f"unnest({arrays}) AS {_ROWS_ALIAS}({aliases})"
    if kind == "INSERT":
        opening = sql.index("(", cut)
        return f"{part(0, cut)}SELECT {part(opening + 1, end)} FROM {source}{part(end + 1, len(sql))}"
    keyword = "FROM" if kind == "UPDATE" else "USING"
    return f"{part(0, cut)}{keyword} {source} {part(cut, len(sql))}"


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

    def execute_rows(self, sql: str, seq: Any) -> Any:
        """executemany for rows that each touch a different target row: one statement for the whole batch."""
        rows = [tuple(p) for p in seq]
        cursor = self._one_statement(sql, rows)
        return self.executemany(sql, rows) if cursor is None else cursor

    def fetch_rows(self, sql: str, seq: Any) -> list[Any]:
        """execute_rows for a statement with RETURNING: every row's returned rows."""
        rows = [tuple(p) for p in seq]
        cursor = self._one_statement(sql, rows)
        if cursor is None:
            return [returned for row in rows for returned in self.execute(sql, row).fetchall()]
        return cursor.fetchall()

    def _one_statement(self, sql: str, rows: list[tuple]) -> Any:
        statement = rows_statement(sql, rows) if len(rows) > 1 else None
        if statement is None:
            return None
        cursor = self.raw.cursor()
        # arrays in binary: the text form of an array of strings costs ~0.5 ms per quoted JSON payload to build
        cursor.execute(translate(statement[0], "%b"), statement[1])
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
