"""SQLite connections for the catalog: driver detection, pragmas, migrations."""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

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


def connect(path: str | Path, *, readonly: bool = False) -> Any:
    """Open the catalog with WAL, a busy timeout and foreign keys; ':memory:' works for tests."""
    driver = detect_driver()
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    if readonly and target != ":memory:":
        conn = driver.module.connect(
            f"file:{target}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
    else:
        conn = driver.module.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
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
    """Apply the migrations not yet recorded in schema_migrations; returns the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        with transaction(conn):
            # re-check under the write lock: another process may have migrated meanwhile
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                continue
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations(version, name) VALUES (?, ?)", (version, name))
        applied.append(name)
    return applied


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
    migrate(conn)
    from soniquebay_assets.catalog.build_settings import check_catalog_settings  # it imports transaction()

    check_catalog_settings(conn)
    return conn
