"""Catalog connections: SQLite (embedded default) or PostgreSQL (several hosts), pragmas, migrations.

A catalog is named by a URL: `sqlite:///PATH` or `postgresql://USER@HOST:PORT/DB`; a bare path means SQLite.
Both connections offer the same small API (execute, executemany, rows by index and name, total_changes,
in_transaction, close) and a `dialect` attribute for the few statements that differ. `transaction()` (from
transactions.py) is offered here with them: every catalog write is one.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from soniquebay_assets.catalog.build_settings import check_catalog_settings
from soniquebay_assets.catalog.transactions import transaction

BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Driver:
    """A DB-API sqlite module and whether it can load extensions such as sqlite-vec."""

    name: str
    module: Any
    can_load_extensions: bool


_driver_lock = threading.Lock()
_driver: Driver | None = None


def _probe(module_name: str) -> Driver | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    conn = module.connect(":memory:")
    try:
        can_load = hasattr(conn, "enable_load_extension")
        if can_load:
            try:
                conn.enable_load_extension(True)
                conn.enable_load_extension(False)
            except Exception:
                can_load = False
    finally:
        conn.close()
    return Driver(module_name, module, can_load)


def detect_driver() -> Driver:
    """Pick the stdlib sqlite3 when it can load extensions, else pysqlite3 (many pyenv builds lack it)."""
    global _driver
    with _driver_lock:
        if _driver is None:
            candidates = [d for d in (_probe("sqlite3"), _probe("pysqlite3.dbapi2")) if d is not None]
            loadable = [d for d in candidates if d.can_load_extensions]
            _driver = loadable[0] if loadable else candidates[0]
        return _driver


class CatalogUnavailable(RuntimeError):
    """The catalog URL is malformed or its server does not answer (the message hides any password)."""


class CatalogTooNew(RuntimeError):
    """The catalog was migrated by a newer version of this program."""


SQLITE = "sqlite"
POSTGRESQL = "postgresql"


def backend_of(target: str | Path) -> tuple[str, str]:
    """(backend, path or URL) for a catalog target: a path, sqlite:///PATH or postgresql://..."""
    if isinstance(target, Path):
        return SQLITE, str(target)
    text = str(target).strip()
    if text.startswith("sqlite:"):
        # SQLAlchemy's spelling: sqlite:///relative.db, sqlite:////absolute/path.db
        path = text[len("sqlite:///"):] if text.startswith("sqlite:///") else ""
        if not path:
            raise CatalogUnavailable(f"catalog URL {text!r} names no file: write sqlite:////absolute/path/catalog.db")
        return SQLITE, path
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            return POSTGRESQL, text
        from soniquebay_assets.catalog.pg import redact

        raise CatalogUnavailable(f"catalog URL {redact(text)!r}: unknown scheme {scheme!r}; "
                                 "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    return SQLITE, text


def display_target(target: str | Path) -> str:
    """The catalog target for messages: a path, or the URL with its password hidden."""
    from soniquebay_assets.catalog.pg import redact

    return redact(str(target))


def dialect_of(conn: Any) -> str:
    return getattr(conn, "dialect", SQLITE)


def connect(path: str | Path, *, readonly: bool = False) -> Any:
    """Open the catalog (SQLite: WAL, busy timeout, foreign keys; ':memory:' works for tests; or PostgreSQL)."""
    backend, target = backend_of(path)
    if backend == POSTGRESQL:
        return _connect_postgresql(target)
    driver = detect_driver()
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    if readonly and target != ":memory:":
        conn = driver.module.connect(
            f"file:{target}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
            factory=_sqlite_connection_class(driver),
        )
    else:
        conn = driver.module.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                                     factory=_sqlite_connection_class(driver))
    conn.row_factory = driver.module.Row
    conn.isolation_level = None  # explicit transactions only, see transaction()
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly and target != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


_sqlite_classes: dict[str, type] = {}


def _sqlite_connection_class(driver: Driver) -> type:
    """The driver's Connection with a `dialect` attribute (the PostgreSQL connection has one too)."""
    if driver.name not in _sqlite_classes:
        _sqlite_classes[driver.name] = type("SqliteCatalogConnection", (driver.module.Connection,),
                                            {"dialect": SQLITE})
    return _sqlite_classes[driver.name]


def _connect_postgresql(url: str) -> Any:
    from soniquebay_assets.catalog import pg

    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        raise CatalogUnavailable("the PostgreSQL catalog needs psycopg: pip install 'psycopg[binary]'") from exc
    try:
        return pg.connect(url)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogUnavailable(f"cannot open the catalog at {pg.redact(url)}: {pg.redact(reason)}") from None
    except ValueError as exc:
        raise CatalogUnavailable(f"bad catalog URL {pg.redact(url)}: {exc}") from None


def execute_rows(conn: Any, sql: str, rows: Any) -> None:
    """`conn.executemany(sql, rows)` where no two rows touch the same target row (distinct keys): PostgreSQL then
    runs it as one statement over all the rows (one round trip and one executor start instead of one per row)."""
    if dialect_of(conn) == POSTGRESQL:
        conn.execute_rows(sql, rows)
    else:
        conn.executemany(sql, rows)


def fetch_rows(conn: Any, sql: str, rows: Any) -> list[Any]:
    """execute_rows for a statement with RETURNING: what every row returned (in no particular order)."""
    if dialect_of(conn) == POSTGRESQL:
        return conn.fetch_rows(sql, rows)
    return [returned for row in rows for returned in conn.execute(sql, row).fetchall()]


def rows_in(conn: Any, sql: str, values: Sequence[Any]) -> list[Any]:
    """The rows of `sql` (with one `IN ({})`) over all `values`, asked in chunks under SQLite's parameter limit."""
    found: list[Any] = []
    for i in range(0, len(values), 900):
        part = list(values[i:i + 900])
        found += conn.execute(sql.format(",".join("?" * len(part))), part).fetchall()
    return found


def id_set(conn: Any, ids: Sequence[int]) -> tuple[str, Any]:
    """(subquery, its one parameter) listing `ids`, for `x IN (subquery)` over any number of ids in one statement:
    no chunking under SQLite's parameter limit, and on PostgreSQL one array instead of a parameter per id."""
    if dialect_of(conn) == POSTGRESQL:
        return "SELECT unnest(?::bigint[])", [int(i) for i in ids]
    return "SELECT value FROM json_each(?)", json.dumps([int(i) for i in ids])


_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every numbered migration shipped in the package, in order."""
    found = []
    for entry in resources.files("soniquebay_assets.catalog").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two catalog migrations share a number: {versions}")
    return found


def migrate(conn: Any) -> list[str]:
    """Apply the migrations not yet recorded in schema_migrations; returns the names applied.
    Refuses a catalog that a newer version migrated further (its schema may not be what this code expects)."""
    postgres = dialect_of(conn) == POSTGRESQL
    create = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
              " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))")
    if postgres:
        from soniquebay_assets.catalog import pg

        with transaction(conn):  # the writer lock: two hosts starting together create the table once
            for statement in pg.translate_ddl(create):
                conn.raw.execute(statement)
    else:
        conn.execute(create)
    shipped = migration_files()
    _refuse_newer(conn, shipped)
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in shipped:
        if version in done:
            continue
        with transaction(conn):
            # re-check under the write lock: another process may have migrated meanwhile
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                continue
            for statement in _split_sql(sql):
                if postgres:
                    for translated in pg.translate_ddl(statement):
                        conn.raw.execute(translated)
                else:
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations(version, name) VALUES (?, ?)", (version, name))
        applied.append(name)
    return applied


def _refuse_newer(conn: Any, shipped: list[tuple[int, str, str]]) -> None:
    known = max((v for v, _, _ in shipped), default=0)
    row = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1").fetchone()
    if row is not None and int(row[0]) > known:
        raise CatalogTooNew(
            f"the catalog was migrated by a newer version of soniquebay (schema {row[0]} {row[1]}; this version "
            f"knows up to {known}): upgrade soniquebay on this host, or point it at another catalog"
        )


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    driver = detect_driver().module
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if not buffer and line.strip().startswith("--"):
            continue
        buffer += line
        if driver.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def open_catalog(path: str | Path) -> Any:
    """Connect and bring the schema up to date."""
    conn = connect(path)
    try:
        migrate(conn)
        check_catalog_settings(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def connection(target: str | Path) -> Iterator[Any]:
    """`with connection(url) as conn:` an up-to-date catalog connection, closed on exit."""
    conn = open_catalog(target)
    try:
        yield conn
    finally:
        conn.close()


def table_exists(conn: Any, name: str) -> bool:
    if dialect_of(conn) == POSTGRESQL:
        from soniquebay_assets.catalog import pg

        return pg.table_exists(conn, name)
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def create_table(conn: Any, ddl: str) -> None:
    """Run one portable (SQLite-spelled) CREATE statement on either backend, under the writer lock."""
    if not conn.in_transaction:
        with transaction(conn):
            create_table(conn, ddl)
        return
    if dialect_of(conn) == POSTGRESQL:
        from soniquebay_assets.catalog import pg

        for statement in pg.translate_ddl(ddl):
            conn.raw.execute(statement)
    else:
        conn.execute(ddl)


def table_columns(conn: Any, name: str) -> list[str]:
    if dialect_of(conn) == POSTGRESQL:
        from soniquebay_assets.catalog import pg

        return pg.table_columns(conn, name)
    return [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]


def database_key(conn: Any) -> str:
    """Identifies the database behind `conn` (for per-process caches)."""
    if dialect_of(conn) == POSTGRESQL:
        return conn.url
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) or f"memory:{id(conn)}"


def connect_reader(target: str | Path) -> Any:
    """A read-only connection to an existing, migrated catalog (for servers that only read between writers):
    SQLite opened with mode=ro, PostgreSQL with read-only transactions by default."""
    backend, path = backend_of(target)
    if backend == POSTGRESQL:
        conn = _connect_postgresql(path)
        conn.raw.execute("SET default_transaction_read_only = on")
        return conn
    return connect(path, readonly=True)


@contextmanager
def read_snapshot(conn: Any) -> Iterator[Any]:
    """Every statement inside sees the catalog as of one moment (a writer's batch is wholly in or out)."""
    if dialect_of(conn) == POSTGRESQL:
        conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    else:
        conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
