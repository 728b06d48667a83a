"""Similar-track search over the stored vectors, with radio filters.

Measured on 2 shared cores at 100k x 403-d: sqlite-vec float brute force ~80 ms/query (idle), its bit KNN ~56 ms,
numpy exact ~10 ms idle but 25-60 ms at p95 when other jobs hold the cores (multi-threaded BLAS stalls).
Chosen: an index on disk per catalog and vector generation (catalog/vector_index.py: inverted lists of int8
codes, memory-mapped and shared by every process, the head re-scored exactly from the float file), rebuilt when
the catalog's vector generation changes. sqlite-vec's own KNN stays available (`method="sqlite"`) as the exact
reference and for one-shot queries that should not open the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from soniquebay_assets.catalog import db, vector_index, vectors
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets.domain.albums import UNKNOWN_ARTIST

# Candidate rows asked of the index per result wanted; without filters only the head is examined.
CANDIDATES_PER_RESULT = 100
MIN_CANDIDATES = 1000
EXACT_BELOW = vector_index.EXACT_BELOW
ENV_INDEX_DIR = "SONIQUEBAY_VECTOR_INDEX_DIR"

VectorIndex = vector_index.DiskIndex


def index_from_arrays(ids: np.ndarray, matrix: np.ndarray, folder: str | os.PathLike) -> VectorIndex:
    """An index of in-memory vectors built into the empty `folder` (benchmarks and tests)."""
    vector_index.build(Path(folder), np.asarray(ids, dtype=np.int64), np.asarray(matrix, dtype=np.float32))
    return VectorIndex(Path(folder))


_index_cache: dict[str, VectorIndex] = {}
_index_lock = threading.Lock()


def forget_indexes() -> None:
    """Drop this process's cached indexes (a catalog was emptied or recreated under the same key)."""
    with _index_lock:
        _index_cache.clear()


def _database_key(conn: Any) -> str:
    return db.database_key(conn)


def index_base(conn: Any) -> Path:
    """Where the index folders of this catalog live: $SONIQUEBAY_VECTOR_INDEX_DIR when set, else beside a SQLite
    file, else under the data dir's cache ($SONIQUEBAY_DATA_DIR), else the temporary folder (rebuilt after a reboot)."""
    key = _database_key(conn)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    if os.environ.get(ENV_INDEX_DIR):
        return Path(os.environ[ENV_INDEX_DIR]) / digest
    if key.startswith("memory:"):
        return Path(tempfile.gettempdir()) / "soniquebay-vector-index" / f"{digest}-{os.getpid()}"
    if db.dialect_of(conn) != db.POSTGRESQL:
        beside = Path(key + ".vector-index")
        if os.access(beside if beside.exists() else beside.parent, os.W_OK):
            return beside
    if os.environ.get("SONIQUEBAY_DATA_DIR"):
        return Path(os.environ["SONIQUEBAY_DATA_DIR"]) / "cache" / "vector-index" / digest
    return Path(tempfile.gettempdir()) / "soniquebay-vector-index" / digest


def _stamp(conn: Any, settings: vectors.VectorSettings) -> str:
    row = conn.execute("SELECT updated_at FROM vector_settings WHERE id = 1").fetchone()
    return vector_index.stamp_name(settings.generation, str(row[0]) if row else "", settings.config_key)


def get_index(conn: Any, settings: vectors.VectorSettings | None = None) -> VectorIndex:
    """This process's index for the catalog of `conn`, rebuilt on disk when the stored vectors changed."""
    settings = settings or vectors.read_settings(conn)
    if settings is None:
        with _index_lock:
            if "" not in _index_cache:  # one empty index per process, not a folder per call
                folder = Path(tempfile.mkdtemp(prefix="soniquebay-empty-index-"))
                _index_cache[""] = index_from_arrays(np.zeros(0, dtype=np.int64), np.zeros((0, 1), np.float32), folder)
            return _index_cache[""]
    key = _database_key(conn)
    name = _stamp(conn, settings)
    with _index_lock:
        cached = _index_cache.get(key)
        if cached is not None and cached.folder.name == name and cached.dim == settings.dim:
            return cached
        index = vector_index.open_or_build(index_base(conn), name,
                                           lambda scratch: vectors.dump_matrix(conn, settings.dim, scratch),
                                           settings.generation)
        _index_cache[key] = index
        return index


def index_ready(conn: Any, settings: vectors.VectorSettings) -> bool:
    """Whether the index of the current vector generation is built already (opening it then costs milliseconds)."""
    cached = _index_cache.get(_database_key(conn))
    name = _stamp(conn, settings)
    return (cached is not None and cached.folder.name == name) or (index_base(conn) / name / "meta.json").exists()


@dataclass(frozen=True)
class RadioFilters:
    """Constraints for a radio: skip the seed's album, keep a BPM range, keep harmonically compatible keys."""

    exclude_same_album: bool = False
    bpm_min: float | None = None
    bpm_max: float | None = None
    compatible_keys: bool = False
    exclude_track_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def needs_metadata(self) -> bool:
        return self.exclude_same_album or self.bpm_min is not None or self.bpm_max is not None or self.compatible_keys


@dataclass(frozen=True)
class SimilarTrack:
    track_id: int
    score: float
    path: str | None = None
    title: str | None = None
    artists: list[str] = field(default_factory=list)
    album_id: int | None = None
    bpm: float | None = None
    camelot: str | None = None

    def to_json(self) -> dict:
        return {
            "track_id": self.track_id,
            "path": self.path,
            "title": self.title,
            "artists": self.artists,
            "score": round(float(self.score), 6),
            "bpm": self.bpm,
            "camelot": self.camelot,
        }


def track_facts(conn: Any, track_ids: Sequence[int]) -> dict[int, dict]:
    """path, title, artists, album id, BPM (analysis, else tag) and Camelot key of the given tracks."""
    facts: dict[int, dict] = {}
    ids = list(dict.fromkeys(int(t) for t in track_ids))
    analysis = vectors.read_analysis(conn, ids)
    for i in range(0, len(ids), 900):
        batch = ids[i : i + 900]
        marks = ",".join("?" * len(batch))
        for row in conn.execute(
            "SELECT t.track_id, t.path, t.title, t.artist_display, t.album_id, t.bpm_tag, t.key_tag,"
            " (SELECT json_group_array(name) FROM (SELECT ar.name AS name FROM track_artists ta"
            "   JOIN artists ar ON ar.artist_id = ta.artist_id WHERE ta.track_id = t.track_id"
            "   ORDER BY ta.role = 'featured', ta.position) AS names)"
            f" FROM tracks t WHERE t.track_id IN ({marks})",
            batch,
        ):
            track_id, path, title, artist_display, album_id, bpm_tag, key_tag, artists_json = row
            found = analysis.get(track_id, {})
            bpm = found.get("bpm") if found.get("bpm") is not None else bpm_tag
            camelot = et.camelot_code(found.get("key"), found.get("mode"), found.get("camelot"))
            if camelot is None and key_tag:
                camelot = et.camelot_code(key_tag, None, key_tag)
            artists = [a for a in json.loads(artists_json) if a] or ([artist_display] if artist_display else [])
            facts[track_id] = {
                "path": path, "title": title, "artists": artists, "album_id": album_id,
                "bpm": float(bpm) if bpm is not None else None, "camelot": camelot,
            }  # fmt: skip
    return facts


def _existing(conn: Any, track_ids: Sequence[int]) -> set[int]:
    return {int(r[0]) for r in db.rows_in(conn, "SELECT track_id FROM tracks WHERE track_id IN ({})", list(track_ids))}


def _accepts(facts: dict | None, filters: RadioFilters, seed: dict | None) -> bool:
    if facts is None:
        return False  # a vector whose track vanished (orphan not yet cleaned)
    if not filters.needs_metadata:
        return True
    if filters.exclude_same_album and seed is not None and facts["album_id"] == seed["album_id"]:
        return False
    bpm = facts["bpm"]
    if filters.bpm_min is not None and (bpm is None or bpm < filters.bpm_min):
        return False
    if filters.bpm_max is not None and (bpm is None or bpm > filters.bpm_max):
        return False
    if filters.compatible_keys and seed is not None and seed.get("camelot"):
        if facts["camelot"] not in et.compatible_camelot(seed["camelot"]):
            return False
    return True


def resolve_track(conn: Any, path_or_id: str | int) -> int | None:
    """A track id from an id or a file path (absolute or as stored)."""
    text = str(path_or_id).strip()
    if text.isdigit():
        row = conn.execute("SELECT track_id FROM tracks WHERE track_id = ?", (int(text),)).fetchone()
        if row:
            return int(row[0])
    for candidate in dict.fromkeys([text, os.path.abspath(os.path.expanduser(text))]):
        row = conn.execute("SELECT track_id FROM tracks WHERE path = ?", (candidate,)).fetchone()
        if row:
            return int(row[0])
    return None


def search_similar(
    conn: Any,
    *,
    track_id: int | None = None,
    vector: np.ndarray | None = None,
    k: int = 10,
    filters: RadioFilters | None = None,
    method: str = "index",
    describe: bool = True,
) -> list[SimilarTrack]:
    """The k tracks nearest to a stored track (itself excluded) or to a query vector, best first, filtered.

    method "index" uses the on-disk index (built first when missing), "sqlite" sqlite-vec's exact KNN (no index),
    "auto" the index when it is built already, else the exact KNN.
    describe=False returns ids and scores only (for callers that read the tracks themselves).
    """
    if (track_id is None) == (vector is None):
        raise ValueError("give exactly one of track_id or vector")
    filters = filters or RadioFilters()
    settings = vectors.read_settings(conn)
    if settings is None or k <= 0:
        return []
    if method == "auto":
        method = "index" if index_ready(conn, settings) else "sqlite"
    excluded = set(filters.exclude_track_ids)
    seed = None
    if track_id is not None:
        query = None
        if method != "sqlite":  # the in-memory index already holds the seed's vector
            index = get_index(conn, settings)
            row = index.position.get(int(track_id))
            query = index.read_rows(np.array([row]))[0] if row is not None else None
        if query is None:
            query = vectors.get_vector(conn, track_id)
        if query is None:
            raise LookupError(f"track {track_id} has no vector yet (run `soniquebay scan --stage vectors`)")
        excluded.add(int(track_id))
        if filters.needs_metadata:
            seed = track_facts(conn, [track_id]).get(int(track_id))
    else:
        query = vectors.check_vector(np.asarray(vector, dtype=np.float32) / max(float(np.linalg.norm(vector)), 1e-12), settings.dim)

    if method != "sqlite":
        ranker: Any = _IndexRanker(conn, settings, wide=vector is not None)
    elif db.dialect_of(conn) == db.POSTGRESQL:
        ranker = _ExactRanker(conn, settings)  # no vector type in PostgreSQL here: the exact scan runs in numpy
    else:
        ranker = _SqliteRanker(conn)
    total = ranker.size
    count = min(total, max(MIN_CANDIDATES, CANDIDATES_PER_RESULT * k))
    while True:
        ids, scores = ranker.rank(query, count)
        # without filters only the head is examined (a few spare rows cover not-yet-cleaned orphans)
        head = len(ids) if filters.needs_metadata else min(len(ids), 2 * k + len(excluded))
        picked = [(i, s) for i, s in zip(ids[:head].tolist(), scores[:head].tolist(), strict=True) if i not in excluded]
        if describe or filters.needs_metadata:
            facts = track_facts(conn, [i for i, _ in picked])
        else:  # only whether each track still exists (a vector may outlive its track until cleaned)
            facts = {i: {} for i in _existing(conn, [i for i, _ in picked])}
        results = [(i, s) for i, s in picked if _accepts(facts.get(i), filters, seed)]
        if len(results) >= k or count >= total or (not filters.needs_metadata and head < len(ids)):
            break
        count = min(total, count * 4)  # filters rejected too many: widen the candidate pool
    if not describe:
        return [SimilarTrack(track_id_found, score) for track_id_found, score in results[:k]]
    out = []
    for track_id_found, score in results[:k]:
        f = facts[track_id_found]
        out.append(SimilarTrack(track_id_found, score, f["path"], f["title"], f["artists"], f["album_id"], f["bpm"], f["camelot"]))
    return out


class _IndexRanker:
    def __init__(self, conn: Any, settings: vectors.VectorSettings | None = None, *, wide: bool = False) -> None:
        self.index = get_index(conn, settings)
        self.size = len(self.index)
        self.wide = wide  # a free-text query: probe and re-score more

    def rank(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        rows, scores = self.index.ranked(query, count, wide=self.wide)
        return self.index.ids[rows], scores


class _ExactRanker:
    def __init__(self, conn: Any, settings: vectors.VectorSettings | None = None) -> None:
        self.index = get_index(conn, settings)
        self.size = len(self.index)

    def rank(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        rows, scores = self.index.exact(query, count)
        return self.index.ids[rows], scores


class _SqliteRanker:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.size = conn.execute(f"SELECT COUNT(*) FROM {vectors.VEC_TABLE}").fetchone()[0]

    def rank(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.conn.execute(
            f"SELECT track_id, distance FROM {vectors.VEC_TABLE} WHERE embedding MATCH ? AND k = ? ORDER BY distance",
            (query.astype(np.float32).tobytes(), int(min(count, 4096))),
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        scores = np.array([1.0 - r[1] for r in rows], dtype=np.float64)  # cosine distance -> similarity
        return ids, scores


def track_relations(conn: Any, *, tagged_only: bool = False) -> dict[int, tuple[int | None, frozenset[int], frozenset[str]]]:
    """(album id, artist ids, genre names casefolded) of every track, to judge whether neighbours are related.

    The placeholder artist never relates tracks; with `tagged_only`, albums named from a folder do not either.
    """
    relations: dict[int, tuple[int | None, set[int], set[str]]] = {}
    album_sql = "SELECT t.track_id, CASE WHEN a.title_from_fallback = 1 AND ? = 1 THEN NULL ELSE t.album_id END"
    for track_id, album_id in conn.execute(f"{album_sql} FROM tracks t JOIN albums a ON a.album_id = t.album_id", (int(tagged_only),)):
        relations[track_id] = (album_id, set(), set())
    for track_id, artist_id in conn.execute(
        "SELECT ta.track_id, ta.artist_id FROM track_artists ta JOIN artists ar ON ar.artist_id = ta.artist_id"
        " WHERE ar.name != ?",
        (UNKNOWN_ARTIST,),
    ):
        if track_id in relations:
            relations[track_id][1].add(artist_id)
    genre_sql = ["SELECT tg.track_id, g.name FROM track_genres tg JOIN genres g ON g.genre_id = tg.genre_id"]
    if db.table_exists(conn, "track_genres_normalized"):
        genre_sql.append("SELECT track_id, genre FROM track_genres_normalized")
    for sql in genre_sql:
        for track_id, name in conn.execute(sql):
            if track_id in relations and name:
                relations[track_id][2].add(str(name).casefold())
    return {t: (a, frozenset(ar), frozenset(g)) for t, (a, ar, g) in relations.items()}
