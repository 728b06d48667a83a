"""Copy a SQLite catalog into another catalog (typically PostgreSQL): every table, in foreign-key order, in one
transaction on the target, then verified by row counts and per-table checksums."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.catalog import db, vectors

BATCH = 2000
# sqlite-vec keeps its rows in shadow tables named after the vec0 table; the vec0 table itself is copied.
_SKIPPED_PREFIXES = ("sqlite_", f"{vectors.VEC_TABLE}_")
_SKIPPED = {"schema_migrations"}
# Written by every open of a catalog (how it was built): copied like the rest, but never makes a target "non-empty".
_WRITTEN_ON_OPEN = {"catalog_settings"}


class TargetNotEmpty(RuntimeError):
    """The target catalog already holds rows (copy refuses to mix two catalogs)."""


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: list[str]
    order_by: list[str]


def source_tables(conn: Any) -> list[TableInfo]:
    """The SQLite catalog's tables worth copying, parents before children."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    names = [n for n in names if n not in _SKIPPED and not n.startswith(_SKIPPED_PREFIXES)]
    parents = {n: {r[2] for r in conn.execute(f"PRAGMA foreign_key_list({n})")} - {n} for n in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:  # a cycle cannot happen in this schema; keep going rather than loop forever
            ready = [n for n in names if n not in ordered]
        ordered += sorted(ready)
    infos = []
    for name in ordered:
        if name == vectors.VEC_TABLE:
            infos.append(TableInfo(name, ["track_id", "embedding"], ["track_id"]))
            continue
        info = list(conn.execute(f"PRAGMA table_info({name})"))
        columns = [r[1] for r in info]
        keys = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        infos.append(TableInfo(name, columns, keys or columns))
    return infos


def row_count(conn: Any, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _rows(conn: Any, table: TableInfo) -> Iterator[tuple]:
    cursor = conn.execute(f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {', '.join(table.order_by)}")
    while True:
        batch = cursor.fetchmany(BATCH)
        if not batch:
            return
        for row in batch:
            yield tuple(row)


def _canonical(value: Any) -> bytes:
    if value is None:
        return b"\x00N"
    if isinstance(value, bytes | bytearray | memoryview):
        return b"\x00B" + bytes(value)
    if isinstance(value, int):  # bool too
        return b"\x00N" + str(int(value)).encode()
    if isinstance(value, float):  # 3.0 and 3 are the same number whichever backend stored it
        return b"\x00N" + (str(int(value)) if value.is_integer() else repr(value)).encode()
    return b"\x00T" + str(value).encode("utf-8", "surrogateescape")


def checksum(conn: Any, table: TableInfo) -> tuple[int, str]:
    """(rows, sha256 over the rows in key order, values in a backend-neutral form)."""
    digest = hashlib.sha256()
    count = 0
    for row in _rows(conn, table):
        digest.update(b"\x01".join(_canonical(v) for v in row) + b"\x02")
        count += 1
    return count, digest.hexdigest()


def target_row_counts(conn: Any, tables: list[TableInfo]) -> dict[str, int]:
    return {t.name: row_count(conn, t.name) for t in tables if db.table_exists(conn, t.name)}


def _prepare_vector_table(source: Any, target: Any) -> None:
    """The target's vector table (vec0 on SQLite, a BYTEA table on PostgreSQL) with the source's dimension."""
    if db.table_exists(target, vectors.VEC_TABLE):
        return
    settings = vectors.read_settings(source)
    dim = settings.dim if settings else 1
    if db.dialect_of(target) == db.POSTGRESQL:
        target.execute(f"CREATE TABLE {vectors.VEC_TABLE} (track_id BIGINT PRIMARY KEY, embedding BYTEA NOT NULL)")
    else:
        vectors.load_extension(target)
        target.execute(f"CREATE VIRTUAL TABLE {vectors.VEC_TABLE} USING vec0(track_id INTEGER PRIMARY KEY, "
                       f"embedding float[{dim}] distance_metric=cosine)")


def copy_catalog(source: Any, target: Any, *, force: bool = False) -> dict[str, Any]:
    """Copy every table of SQLite `source` into `target` in one transaction (re-runnable), then verify.

    A target holding rows is refused unless `force`, which replaces its contents."""
    if db.dialect_of(source) != db.SQLITE:
        raise ValueError("the source of a catalog copy must be a SQLite catalog")
    if db.table_exists(source, vectors.VEC_TABLE):
        vectors.load_extension(source)
    tables = source_tables(source)
    existing = {name: n for name, n in target_row_counts(target, tables).items() if n and name not in _WRITTEN_ON_OPEN}
    if existing and not force:
        raise TargetNotEmpty(
            f"the target catalog already holds rows ({', '.join(f'{k}: {v}' for k, v in sorted(existing.items()))}); "
            "give --force to replace its contents"
        )
    if db.dialect_of(target) == db.SQLITE and db.table_exists(target, vectors.VEC_TABLE):
        vectors.load_extension(target)
    with db.transaction(target):
        for table in reversed(tables):  # children first, so parents can go
            if db.table_exists(target, table.name):
                target.execute(f"DELETE FROM {table.name}")
        for table in tables:
            if table.name == vectors.VEC_TABLE:
                _prepare_vector_table(source, target)
            elif not db.table_exists(target, table.name):
                ddl = source.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                     (table.name,)).fetchone()[0]
                db.create_table(target, ddl)
            marks = ", ".join("?" * len(table.columns))
            insert = f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})"
            batch: list[tuple] = []
            for row in _rows(source, table):
                batch.append(row)
                if len(batch) >= BATCH:
                    target.executemany(insert, batch)
                    batch = []
            if batch:
                target.executemany(insert, batch)
        if db.dialect_of(target) == db.POSTGRESQL:
            from soniquebay_assets.catalog import pg

            pg.sync_sequences(target)
    return verify(source, target, tables)


def verify(source: Any, target: Any, tables: list[TableInfo] | None = None) -> dict[str, Any]:
    """Row counts and checksums of every table on both sides; `ok` when they all agree."""
    tables = tables or source_tables(source)
    report: dict[str, Any] = {"tables": {}, "mismatches": []}
    for table in tables:
        src = checksum(source, table)
        dst = checksum(target, table) if db.table_exists(target, table.name) else (0, "")
        report["tables"][table.name] = {"rows": src[0], "checksum": src[1][:16]}
        if src != dst:
            report["mismatches"].append({"table": table.name, "source_rows": src[0], "target_rows": dst[0]})
    report["rows"] = sum(t["rows"] for t in report["tables"].values())
    report["ok"] = not report["mismatches"]
    return report
