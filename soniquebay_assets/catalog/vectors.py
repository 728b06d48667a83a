"""Vector storage: the vector-space settings, scaler fits, per-track vectors, validation.

On SQLite the vectors live in a sqlite-vec vec0 table (the extension must be loaded on the connection:
`load_extension(conn)` first); on PostgreSQL, which has no vector type here, in a plain table of float32 bytes
(BYTEA) searched by the in-memory index. Similarity search lives in `catalog/vector_search.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from soniquebay_assets.catalog import db, inventory
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets.domain.albums import UNKNOWN_ARTIST

VEC_TABLE = "track_vec"
NORM_TOLERANCE = 1e-3
# Analysis rows in these states carry no usable features.
_UNUSABLE_ANALYSIS = ("error", "failed", "pending", "queued", "skipped", "running")
_ANALYSIS_COLUMNS = (
    "bpm", "bpm_confidence", "key", "mode", "camelot", "loudness_lufs", "energy", "danceability",
    "acousticness", "instrumentalness", "mood_happy", "mood_sad", "mood_aggressive", "mood_relaxed",
    "mood_party", "spectral_centroid", "spectral_rolloff", "spectral_flatness", "zero_crossing_rate",
    "duration_s",
)  # fmt: skip


class VectorStoreUnavailable(RuntimeError):
    """sqlite-vec cannot be loaded on this connection."""


def load_extension(conn: Any) -> str:
    """Load sqlite-vec on `conn` (idempotent); returns the sqlite driver name in use ('postgresql' there)."""
    if db.dialect_of(conn) == db.POSTGRESQL:
        return db.POSTGRESQL
    driver = db.detect_driver()
    try:
        conn.execute("SELECT vec_version()").fetchone()
        return driver.name
    except Exception:
        pass
    if not driver.can_load_extensions or not hasattr(conn, "enable_load_extension"):
        raise VectorStoreUnavailable(
            f"sqlite driver {driver.name!r} cannot load extensions, so sqlite-vec is unavailable; "
            "install pysqlite3-binary (Linux) or use a Python whose sqlite3 supports enable_load_extension"
        )
    import sqlite_vec

    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    finally:
        conn.enable_load_extension(False)
    return driver.name


def driver_report(conn: Any) -> dict:
    """Which sqlite driver and sqlite-vec version this process uses (shown by CLI and asset metadata)."""
    if db.dialect_of(conn) == db.POSTGRESQL:
        version = conn.execute("SHOW server_version").fetchone()[0]
        return {"sqlite_driver": db.POSTGRESQL, "postgresql_version": version, "vector_store": "bytea table"}
    driver = db.detect_driver()
    version = conn.execute("SELECT vec_version()").fetchone()[0]
    sqlite_version = conn.execute("SELECT sqlite_version()").fetchone()[0]
    return {"sqlite_driver": driver.name, "sqlite_version": sqlite_version, "sqlite_vec_version": version}


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class VectorSettings:
    """The recorded vector space: model, dimensions, weights and the digest that identifies them."""

    model_name: str
    text_dim: int
    audio_dim: int
    dim: int
    weights: et.Weights
    config_key: str
    generation: int


def read_settings(conn: Any) -> VectorSettings | None:
    row = conn.execute(
        "SELECT model_name, text_dim, audio_dim, dim, weights, config_key, generation FROM vector_settings WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    weights = et.Weights(**json.loads(row[4]))
    return VectorSettings(row[0], row[1], row[2], row[3], weights, row[5], row[6])


def generation(conn: Any) -> int:
    row = conn.execute("SELECT generation FROM vector_settings WHERE id = 1").fetchone()
    return -1 if row is None else int(row[0])


def vec_table_exists(conn: Any) -> bool:
    return db.table_exists(conn, VEC_TABLE)


def reset_space(conn: Any, *, model_name: str, text_dim: int, weights: et.Weights) -> VectorSettings:
    """Clean rebuild: drop every stored vector, record the new space, create vec0 with its dimension."""
    with db.transaction(conn):
        _reset_space(conn, model_name, text_dim, weights)
    return read_settings(conn)  # type: ignore[return-value]


def _reset_space(conn: Any, model_name: str, text_dim: int, weights: et.Weights) -> None:
    audio_dim = len(et.FEATURE_NAMES)
    dim = text_dim + audio_dim
    key = et.config_key(model_name, text_dim, weights)
    conn.execute(f"DROP TABLE IF EXISTS {VEC_TABLE}")
    if db.dialect_of(conn) == db.POSTGRESQL:
        conn.execute(f"CREATE TABLE {VEC_TABLE} (track_id BIGINT PRIMARY KEY, embedding BYTEA NOT NULL)")
    else:
        conn.execute(
            f"CREATE VIRTUAL TABLE {VEC_TABLE} USING vec0(track_id INTEGER PRIMARY KEY, embedding float[{dim}] distance_metric=cosine)"
        )
    conn.execute("DELETE FROM track_vectors")
    conn.execute("DELETE FROM embedding_fragments WHERE model_name != ?", (model_name,))  # another model's cache
    conn.execute(
        "INSERT INTO vector_settings(id, model_name, text_dim, audio_dim, dim, weights, feature_names,"
        " feature_set_version, config_key, generation) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
        " ON CONFLICT(id) DO UPDATE SET model_name = excluded.model_name, text_dim = excluded.text_dim,"
        " audio_dim = excluded.audio_dim, dim = excluded.dim, weights = excluded.weights,"
        " feature_names = excluded.feature_names, feature_set_version = excluded.feature_set_version,"
        " config_key = excluded.config_key, generation = vector_settings.generation + 1,"
        " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        (model_name, text_dim, audio_dim, dim, json.dumps(weights.to_json()), json.dumps(list(et.FEATURE_NAMES)),
         et.FEATURE_SET_VERSION, key),
    )  # fmt: skip


def ensure_space(conn: Any, *, model_name: str, text_dim: int, weights: et.Weights) -> tuple[VectorSettings, bool]:
    """The recorded space, rebuilt from scratch when model, dimension, features or weights differ; (settings, rebuilt).

    Checked again under the write lock, so two workers starting together never rebuild twice.
    """
    wanted = et.config_key(model_name, text_dim, weights)
    current = read_settings(conn)
    if current is not None and current.config_key == wanted and vec_table_exists(conn):
        return current, False
    with db.transaction(conn):
        current = read_settings(conn)
        rebuilt = not (current is not None and current.config_key == wanted and vec_table_exists(conn))
        if rebuilt:
            _reset_space(conn, model_name, text_dim, weights)
    return read_settings(conn), rebuilt  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ scaler


def latest_scaler(conn: Any) -> et.ScalerStats | None:
    row = conn.execute(
        "SELECT scaler_version, feature_names, mean, std, n_samples FROM vector_scalers ORDER BY scaler_version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return et.ScalerStats(row[0], tuple(json.loads(row[1])), tuple(json.loads(row[2])), tuple(json.loads(row[3])), row[4])


def save_scaler(conn: Any, fit: et.ScalerStats) -> et.ScalerStats:
    """Record a fit under the next version number (inside the caller's transaction or its own)."""
    row = conn.execute("SELECT COALESCE(MAX(scaler_version), 0) + 1 FROM vector_scalers").fetchone()
    version = int(row[0])
    conn.execute(
        "INSERT INTO vector_scalers(scaler_version, feature_names, mean, std, n_samples) VALUES (?, ?, ?, ?, ?)",
        (version, json.dumps(list(fit.names)), json.dumps(list(fit.mean)), json.dumps(list(fit.std)), fit.n_samples),
    )
    return et.ScalerStats(version, fit.names, fit.mean, fit.std, fit.n_samples)


# ------------------------------------------------------------------------------------------ inputs


def analysis_available(conn: Any) -> bool:
    return db.table_exists(conn, "track_analysis")


def _analysis_select(conn: Any) -> str | None:
    """SELECT list for the analysis columns that exist (the enrichment schema may lag or grow); remembered per
    connection, as a similarity query would otherwise pay two more catalog round trips for it."""
    cached = getattr(conn, "_soniquebay_analysis_select", False)
    if cached is not False:
        return cached
    select = None
    if analysis_available(conn):
        present = set(db.table_columns(conn, "track_analysis"))
        columns = [c for c in _ANALYSIS_COLUMNS if c in present]
        extras = [c for c in ("status", "analysis_version") if c in present]
        select = ", ".join(["track_id", *columns, *extras])
    try:
        conn._soniquebay_analysis_select = select
    except AttributeError:  # a connection type without instance attributes: ask every time
        pass
    return select


def _usable(analysis: dict) -> bool:
    status = analysis.get("status")
    return not (isinstance(status, str) and status.casefold() in _UNUSABLE_ANALYSIS)


def read_analysis(conn: Any, track_ids: Sequence[int] | None = None) -> dict[int, dict]:
    """Usable analysis rows by track id (newest analysis_version wins); {} when enrichment has not run."""
    select = _analysis_select(conn)
    if select is None:
        return {}
    order = " ORDER BY analysis_version" if "analysis_version" in select else ""
    found: dict[int, dict] = {}
    if track_ids is None:
        batches: Iterable[Sequence[int] | None] = [None]
    else:
        batches = [track_ids[i : i + 900] for i in range(0, len(track_ids), 900)]
    for batch in batches:
        if batch is None:
            cursor = conn.execute(f"SELECT {select} FROM track_analysis{order}")
        elif not batch:
            continue
        else:
            marks = ",".join("?" * len(batch))
            cursor = conn.execute(f"SELECT {select} FROM track_analysis WHERE track_id IN ({marks}){order}", list(batch))
        names = [d[0] for d in cursor.description]
        for row in cursor:
            record = dict(zip(names, row, strict=True))
            if _usable(record):
                found[record["track_id"]] = record
    return found


@dataclass
class TrackInput:
    """Everything one track's vector is built from."""

    track_id: int
    shard: str
    text: et.TrackText


def read_track_inputs(conn: Any, shards: Sequence[str] | None = None) -> list[TrackInput]:
    """Tags (title, artists, album, genres, year) and analysis of the tracks of `shards` (all when None)."""
    where, params = "", []
    if shards is not None:
        where = f" WHERE t.shard IN ({','.join('?' * len(shards))})"
        params = list(shards)
    rows = conn.execute(
        "SELECT t.track_id, t.shard, t.title, t.artist_display, t.year, a.title, a.album_artist,"
        " (SELECT json_group_array(name) FROM (SELECT ar.name AS name FROM track_artists ta"
        "   JOIN artists ar ON ar.artist_id = ta.artist_id WHERE ta.track_id = t.track_id"
        "   ORDER BY ta.role = 'featured', ta.position) AS names),"
        " (SELECT json_group_array(name) FROM (SELECT g.name AS name FROM track_genres tg"
        "   JOIN genres g ON g.genre_id = tg.genre_id WHERE tg.track_id = t.track_id ORDER BY tg.position) AS names)"
        f" FROM tracks t LEFT JOIN albums a ON a.album_id = t.album_id{where} ORDER BY t.track_id",
        params,
    ).fetchall()
    analysis = read_analysis(conn, [r[0] for r in rows]) if rows else {}
    inputs = []
    for track_id, shard, title, artist_display, year, album, album_artist, artists_json, genres_json in rows:
        # the placeholder artist says nothing about the music: it would pull all untagged tracks together
        artists = [a for a in json.loads(artists_json) if a and a != UNKNOWN_ARTIST]
        if not artists and artist_display and artist_display != UNKNOWN_ARTIST:
            artists = [artist_display]
        genres = [g for g in json.loads(genres_json) if g]
        text = et.TrackText(title, tuple(artists), album, album_artist, tuple(genres), year, analysis.get(track_id))
        inputs.append(TrackInput(track_id, shard, text))
    return inputs


def text_only_track_shards(conn: Any) -> dict[int, str]:
    """track_id -> shard of every track whose stored vector has no audio part."""
    return dict(conn.execute("SELECT v.track_id, t.shard FROM track_vectors v JOIN tracks t ON t.track_id = v.track_id"
                             " WHERE v.text_only = 1").fetchall())


def stored_hashes(conn: Any, track_ids: Sequence[int]) -> dict[int, str]:
    return {row[0]: row[1] for row in db.rows_in(
        conn, "SELECT track_id, input_hash FROM track_vectors WHERE track_id IN ({})", list(track_ids))}


# ------------------------------------------------------------------------------------------ fragments


def get_fragments(conn: Any, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
    """Cached unit text-fragment embeddings by key (only those of the right dimension)."""
    found: dict[str, np.ndarray] = {}
    unique = list(dict.fromkeys(keys))
    for i in range(0, len(unique), 900):
        batch = unique[i : i + 900]
        marks = ",".join("?" * len(batch))
        for key, blob in conn.execute(
            f"SELECT fragment_key, embedding FROM embedding_fragments WHERE dim = ? AND fragment_key IN ({marks})",
            [dim, *batch],
        ):
            found[key] = np.frombuffer(blob, dtype=np.float32)
    return found


def put_fragments(conn: Any, model_name: str, items: dict[str, np.ndarray]) -> None:
    conn.executemany(
        "INSERT INTO embedding_fragments(fragment_key, model_name, dim, embedding) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(fragment_key) DO NOTHING",
        [(key, model_name, int(vec.shape[0]), np.asarray(vec, dtype=np.float32).tobytes()) for key, vec in items.items()],
    )


# ------------------------------------------------------------------------------------------ vectors


@dataclass
class VectorRow:
    """One vector to store, with what it was built from."""

    track_id: int
    vector: np.ndarray
    input_hash: str
    text_only: bool
    scaler_version: int | None
    embedded_text: str


def check_vector(vector: np.ndarray, dim: int) -> np.ndarray:
    """float32 copy of `vector`; ValueError on wrong dimension, NaN/inf or a non-unit norm."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dim:
        raise ValueError(f"vector has dimension {array.shape}, the catalog's vector space has {dim}")
    if not np.all(np.isfinite(array)):
        raise ValueError("vector contains NaN or infinity")
    norm = float(np.linalg.norm(array))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise ValueError(f"vector is not L2-normalized (norm {norm:.4f})")
    return array


def write_vectors(conn: Any, settings: VectorSettings, rows: Sequence[VectorRow]) -> None:
    """Replace the vectors of `rows` (call inside a transaction): vec0 row + metadata row, checked first."""
    checked = [(row, check_vector(row.vector, settings.dim)) for row in rows]
    for row, array in checked:
        conn.execute(f"DELETE FROM {VEC_TABLE} WHERE track_id = ?", (row.track_id,))
        conn.execute(f"INSERT INTO {VEC_TABLE}(track_id, embedding) VALUES (?, ?)", (row.track_id, array.tobytes()))
    conn.executemany(
        "INSERT INTO track_vectors(track_id, input_hash, config_key, scaler_version, text_only, embedded_text, norm)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(track_id) DO UPDATE SET input_hash = excluded.input_hash,"
        " config_key = excluded.config_key, scaler_version = excluded.scaler_version, text_only = excluded.text_only,"
        " embedded_text = excluded.embedded_text, norm = excluded.norm,"
        " vectorized_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        [
            (row.track_id, row.input_hash, settings.config_key, row.scaler_version, int(row.text_only),
             row.embedded_text, float(np.linalg.norm(array)))
            for row, array in checked
        ],
    )  # fmt: skip
    bump_generation(conn)


def record_vector_error(conn: Any, track_id: int, reason: str, detail: str) -> None:
    """A per-track vector problem goes to scan_errors (stage 'vector') as every stage's errors do."""
    row = conn.execute("SELECT path, shard FROM tracks WHERE track_id = ?", (track_id,)).fetchone()
    if row is not None:
        inventory.record_errors(conn, [inventory.ErrorRecord(row[0], "vector", reason, detail[:2000], row[1])])


def bump_generation(conn: Any) -> None:
    conn.execute("UPDATE vector_settings SET generation = generation + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")


def delete_orphans(conn: Any) -> int:
    """Remove vec0 rows (which do not cascade) and metadata rows whose track is gone; returns vec rows removed."""
    if not vec_table_exists(conn):
        return 0
    with db.transaction(conn):
        orphan_ids = [r[0] for r in conn.execute(f"SELECT track_id FROM {VEC_TABLE} WHERE track_id NOT IN (SELECT track_id FROM tracks)")]
        for track_id in orphan_ids:
            conn.execute(f"DELETE FROM {VEC_TABLE} WHERE track_id = ?", (track_id,))
        conn.execute("DELETE FROM track_vectors WHERE track_id NOT IN (SELECT track_id FROM tracks)")
        # metadata without a vec0 row (e.g. a crashed manual edit) would hide the track from re-vectorizing
        conn.execute(f"DELETE FROM track_vectors WHERE track_id NOT IN (SELECT track_id FROM {VEC_TABLE})")
        if orphan_ids:
            bump_generation(conn)
    return len(orphan_ids)


def has_vectors(conn: Any) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM track_vectors)").fetchone()[0])


def stored_texts_and_vectors(conn: Any, track_ids: Sequence[int]) -> dict[int, tuple[str, np.ndarray]]:
    """track id -> (embedded text, stored float32 vector) for the tracks that have both."""
    out: dict[int, tuple[str, np.ndarray]] = {}
    for i in range(0, len(track_ids), 500):
        batch = list(track_ids[i : i + 500])
        marks = ",".join("?" * len(batch))
        texts = dict(conn.execute(f"SELECT track_id, embedded_text FROM track_vectors WHERE track_id IN ({marks})",
                                  batch).fetchall())
        for track_id, blob in conn.execute(f"SELECT track_id, embedding FROM {VEC_TABLE} WHERE track_id IN ({marks})",
                                           batch):
            if track_id in texts:
                out[track_id] = (texts[track_id], np.frombuffer(bytes(blob), dtype=np.float32))
    return out


def get_vector(conn: Any, track_id: int) -> np.ndarray | None:
    row = conn.execute(f"SELECT embedding FROM {VEC_TABLE} WHERE track_id = ?", (track_id,)).fetchone()
    return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()


def load_matrix(conn: Any, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(track ids int64, vectors float32 n x dim) of every stored vector, in track id order."""
    if not vec_table_exists(conn):
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
    # filled chunk by chunk: the rows and their joined bytes would each hold a second copy of every vector
    capacity = int(conn.execute(f"SELECT COUNT(*) FROM {VEC_TABLE}").fetchone()[0])
    ids = np.empty(capacity, dtype=np.int64)
    matrix = np.empty((capacity, dim), dtype=np.float32)
    cursor = conn.execute(f"SELECT track_id, embedding FROM {VEC_TABLE} ORDER BY track_id")
    filled = 0
    while chunk := cursor.fetchmany(4096):
        if filled + len(chunk) > capacity:  # rows written since the count
            capacity = max(filled + len(chunk), capacity * 2)
            ids, matrix = np.resize(ids, capacity), np.resize(matrix, (capacity, dim))
        ids[filled:filled + len(chunk)] = [r[0] for r in chunk]
        matrix[filled:filled + len(chunk)] = np.frombuffer(b"".join(r[1] for r in chunk),
                                                           dtype=np.float32).reshape(len(chunk), dim)
        filled += len(chunk)
    return ids[:filled], matrix[:filled]


def dump_matrix(conn: Any, dim: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(track ids, vectors) of every stored vector in track id order, the vectors written to a file under `folder`
    and memory-mapped: a million of them would be 1.6 GB held by the process."""
    path = Path(folder) / "source.f32"
    ids: list[np.ndarray] = []
    with open(path, "wb") as out:
        if vec_table_exists(conn):
            cursor = conn.execute(f"SELECT track_id, embedding FROM {VEC_TABLE} ORDER BY track_id")
            while chunk := cursor.fetchmany(4096):
                ids.append(np.array([r[0] for r in chunk], dtype=np.int64))
                out.write(b"".join(bytes(r[1]) for r in chunk))
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    if not len(all_ids):
        return all_ids, np.zeros((0, dim), dtype=np.float32)
    return all_ids, np.memmap(path, dtype=np.float32, mode="r", shape=(len(all_ids), dim))


# ------------------------------------------------------------------------------------------ validation


def validate(conn: Any) -> dict:
    """Dimension, NaN/inf, norm, orphans and tracks without a vector; `ok` is False on any defect but missing."""
    settings = read_settings(conn)
    n_tracks = conn.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
    report: dict = {"n_tracks": n_tracks, "model": None, "dim": None}
    if settings is None or not vec_table_exists(conn):
        report.update(n_vectors=0, missing=n_tracks, ok=n_tracks == 0, defects=[] if n_tracks == 0 else ["no vector index yet"])
        return report
    report.update(model=settings.model_name, dim=settings.dim, weights=settings.weights.to_json())
    rows = conn.execute(f"SELECT track_id, embedding FROM {VEC_TABLE}").fetchall()
    expected_bytes = settings.dim * 4
    bad_dimension = [r[0] for r in rows if len(r[1]) != expected_bytes]
    good = [r for r in rows if len(r[1]) == expected_bytes]
    non_finite: list[int] = []
    bad_norm: list[int] = []
    if good:
        matrix = np.frombuffer(b"".join(r[1] for r in good), dtype=np.float32).reshape(len(good), settings.dim)
        ids = np.array([r[0] for r in good])
        finite = np.isfinite(matrix).all(axis=1)
        non_finite = ids[~finite].tolist()
        norms = np.linalg.norm(np.where(np.isfinite(matrix), matrix, 0), axis=1)
        bad_norm = ids[finite & (np.abs(norms - 1.0) > NORM_TOLERANCE)].tolist()
    orphans = conn.execute(f"SELECT COUNT(*) FROM {VEC_TABLE} WHERE track_id NOT IN (SELECT track_id FROM tracks)").fetchone()[0]
    missing = conn.execute(f"SELECT COUNT(*) FROM tracks WHERE track_id NOT IN (SELECT track_id FROM {VEC_TABLE})").fetchone()[0]
    stale_config = conn.execute("SELECT COUNT(*) FROM track_vectors WHERE config_key != ?", (settings.config_key,)).fetchone()[0]
    text_only = conn.execute("SELECT COUNT(*) FROM track_vectors WHERE text_only = 1").fetchone()[0]
    defects = []
    for name, count in (("bad_dimension", len(bad_dimension)), ("non_finite", len(non_finite)),
                        ("bad_norm", len(bad_norm)), ("orphans", orphans), ("stale_config", stale_config)):  # fmt: skip
        if count:
            defects.append(f"{count} {name}")
    report.update(
        n_vectors=len(rows),
        missing=missing,
        text_only=text_only,
        bad_dimension=len(bad_dimension),
        non_finite=len(non_finite),
        bad_norm=len(bad_norm),
        orphans=orphans,
        stale_config=stale_config,
        examples=(bad_dimension + non_finite + bad_norm)[:10],
        defects=defects,
        ok=not defects,
    )
    return report
