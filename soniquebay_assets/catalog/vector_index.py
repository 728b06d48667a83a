"""The similar-track index on disk: inverted lists of int8 codes, memory-mapped, with exact float re-ranking.

A million 403-d float32 vectors are 1.6 GB: held in every searching process they decide the memory of the API,
the CLI and the playlists stage. Here only small parts are in the process: the list centroids (a few MB), the ids,
and the pages of the int8 codes (PCA-rotated, truncated to the dimensions that hold nearly all variance) of the
lists a query probes. The float vectors stay in a file read with pread for the few hundred rows re-ranked exactly,
so they never count in the process's resident memory (they live in the page cache, shared by every process).
Files are written once per vector generation into a fresh folder and renamed into place, so readers never see a
half-written index, and several processes share one copy through the page cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
# Below this size a query scores every vector exactly: a float scan of a few thousand rows is cheaper than
# probing lists, and the result is exact.
EXACT_BELOW = 4000
# Rows whose float vectors are read from disk and scored exactly, per query; the int8 order of a probed pool
# misplaces neighbours by a few ranks at most, so a few hundred keep recall@10 at the exact search's.
RERANK_ROWS = 256
# Candidate rows scored by their int8 codes per query: probing more lists trades milliseconds for recall.
# Measured at 1M real-model-distributed vectors (docs/scale.md): seed queries recall@10 0.998 from 4k rows up.
POOL_ROWS = 8_000
# Free-text queries have no audio block and many near-tied neighbours (the same genre, tempo and mood words):
# the int8 order misplaces more of them, so they probe and re-score more (1M: recall@10 0.83 -> 0.89).
WIDE_POOL_ROWS = 16_000
WIDE_RERANK_ROWS = 1024
VARIANCE_KEPT = 0.995
TRAIN_SAMPLE = 60_000
KMEANS_ITERATIONS = 8


def list_count(n: int) -> int:
    """Inverted lists for n vectors: about 2 sqrt(n) keeps both the centroid scan and each list small."""
    return int(min(4096, max(1, round(2 * math.sqrt(n)))))


def _dot_rows(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row dot products in einsum's single-threaded loop: a multi-threaded BLAS gemv stalls for milliseconds
    when another job holds the second core, and these products are small."""
    return np.einsum("ij,j->i", matrix, query)


class Positions:
    """track id -> row of the index, by binary search over the sorted ids (a dict of 1M ints is ~100 MB)."""

    def __init__(self, sorted_ids: np.ndarray, rows: np.ndarray) -> None:
        self.sorted_ids = sorted_ids
        self.rows = rows

    def get(self, track_id: int, default: int | None = None) -> int | None:
        at = int(np.searchsorted(self.sorted_ids, track_id))
        if at < len(self.sorted_ids) and int(self.sorted_ids[at]) == int(track_id):
            return int(self.rows[at])
        return default

    def __getitem__(self, track_id: int) -> int:
        row = self.get(track_id)
        if row is None:
            raise KeyError(track_id)
        return row

    def __contains__(self, track_id: object) -> bool:
        return isinstance(track_id, (int, np.integer)) and self.get(int(track_id)) is not None

    def __len__(self) -> int:
        return len(self.sorted_ids)


class DiskIndex:
    """One built index folder, opened read-only: `matrix` is the float file memory-mapped, `ids` row -> track id."""

    def __init__(self, folder: Path, generation: int = -1) -> None:
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"vector index format {meta.get('format')} is not {FORMAT_VERSION}")
        self.meta = meta
        self.generation = generation
        n, dim, kept = int(meta["n"]), int(meta["dim"]), int(meta["kept_dims"])
        self.dim = dim
        self.ids = np.load(self.folder / "ids.npy")
        self.position = Positions(np.load(self.folder / "sorted_ids.npy"), np.load(self.folder / "sorted_rows.npy"))
        self.offsets = np.load(self.folder / "offsets.npy")
        self.centroids = np.load(self.folder / "centroids.npy")
        self.mean = np.load(self.folder / "mean.npy")
        self.rotation = np.load(self.folder / "rotation.npy")
        self.scale = np.load(self.folder / "scale.npy")
        self.matrix = (np.memmap(self.folder / "vectors.f32", dtype=np.float32, mode="r", shape=(n, dim))
                       if n else np.zeros((0, dim), dtype=np.float32))
        self.codes = (np.memmap(self.folder / "codes.i8", dtype=np.int8, mode="r", shape=(n, kept))
                      if n else np.zeros((0, kept), dtype=np.int8))
        self._fd = os.open(self.folder / "vectors.f32", os.O_RDONLY) if n else -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._fd >= 0:
                os.close(self._fd)

    def __len__(self) -> int:
        return len(self.ids)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Float vectors of `rows` read with pread (runs of adjacent rows in one call), not through the mapping,
        so reading them adds nothing to this process's resident memory."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        width = self.dim * 4
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        chunks = []
        for run in np.split(ordered, breaks):
            chunks.append(os.pread(self._fd, width * len(run), int(run[0]) * width))
        out[order] = np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(len(rows), self.dim)
        return out

    def exact(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by a full float scan of the mapped file (the reference for recall; small catalogs)."""
        if len(self.matrix) <= 4096:
            scores = _dot_rows(self.matrix, query)
        else:
            scores = np.concatenate([self.matrix[i:i + 65536] @ query for i in range(0, len(self.matrix), 65536)])
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.arange(0)
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]

    def probe(self, query: np.ndarray, rows_wanted: int) -> np.ndarray:
        """Row numbers of the lists whose centroids are nearest the query, about `rows_wanted` rows in all."""
        sizes = np.diff(self.offsets)
        closeness = _dot_rows(self.centroids, query)
        order = np.argsort(-closeness, kind="stable")
        taken = int(np.searchsorted(np.cumsum(sizes[order]), rows_wanted)) + 1
        lists = np.sort(order[:taken])
        return np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in lists])

    def ranked(self, query: np.ndarray, count: int, *, wide: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, cosine scores) of about the best `count` rows, best first: probed lists ordered by their
        int8 codes, the head re-scored exactly from the float file (the tail keeps its code scores). `wide` probes
        and re-scores more (free-text queries)."""
        n = len(self)
        if n <= max(count, EXACT_BELOW):
            return self.exact(query, count)
        query = np.asarray(query, dtype=np.float32)
        # rows past the exact head keep code scores, so asking many candidates (k=20 asks 2,000) widens the pool
        # only to that count (a pool of 4,000 at 100k measured the same CPU per query: fixed costs dominate there)
        rows = self.probe(query, max(WIDE_POOL_ROWS if wide else POOL_ROWS, count))
        rerank = WIDE_RERANK_ROWS if wide else RERANK_ROWS
        # runs of whole lists: slicing the mapping per list keeps the reads sequential
        weights = ((query - self.mean) @ self.rotation * self.scale).astype(np.float32)
        approx = _dot_rows(self.codes[rows].astype(np.float32), weights) + float(query @ self.mean)
        count = min(count, len(rows))
        top = np.argpartition(-approx, count - 1)[:count]
        top = top[np.argsort(-approx[top], kind="stable")]
        head = top[:rerank]
        exact = _dot_rows(self.read_rows(rows[head]), query)
        head_order = np.argsort(-exact, kind="stable")
        out_rows = np.concatenate([rows[head][head_order], rows[top[rerank:]]])
        out_scores = np.concatenate([exact[head_order], approx[top[rerank:]]])
        return out_rows, out_scores


# ------------------------------------------------------------------------------------------ build


def _spherical_kmeans(sample: np.ndarray, lists: int, rng: np.random.Generator) -> np.ndarray:
    centroids = sample[rng.choice(len(sample), size=lists, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        assign = _assign(sample, centroids)
        sums = np.zeros_like(centroids, dtype=np.float64)
        np.add.at(sums, assign, sample)
        empty = ~np.any(sums, axis=1)
        if empty.any():  # an empty list takes a random sample row, so no centroid is wasted
            sums[empty] = sample[rng.choice(len(sample), size=int(empty.sum()), replace=False)]
        centroids = (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)
    return centroids


def _rows(matrix: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows start..stop as a float32 array; from a memory-mapped file they are read, not mapped, so a pass over a
    million vectors does not leave 1.6 GB of mapped pages in the builder's resident memory."""
    if isinstance(matrix, np.memmap) and matrix.filename and matrix.dtype == np.float32:
        stop = min(stop, len(matrix))
        dim = matrix.shape[1]
        return np.fromfile(matrix.filename, dtype=np.float32, count=max(0, stop - start) * dim,
                           offset=matrix.offset + start * dim * 4).reshape(-1, dim)
    return np.asarray(matrix[start:stop], dtype=np.float32)


def _gather(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows by number (ascending), read with pread from a memory-mapped file."""
    if isinstance(matrix, np.memmap) and matrix.filename and matrix.dtype == np.float32:
        width = matrix.shape[1] * 4
        fd = os.open(matrix.filename, os.O_RDONLY)
        try:
            data = b"".join(os.pread(fd, width, matrix.offset + int(r) * width) for r in rows)
        finally:
            os.close(fd)
        return np.frombuffer(data, dtype=np.float32).reshape(len(rows), matrix.shape[1])
    return np.asarray(matrix[rows], dtype=np.float32)


def _assign(matrix: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.concatenate([np.argmax(_rows(matrix, i, i + 8192) @ centroids.T, axis=1)
                           for i in range(0, len(matrix), 8192)]).astype(np.int32)


def _train(matrix: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Mean, PCA rotation (kept dimensions), int8 scales and list centroids from a sample of the vectors."""
    n, dim = matrix.shape
    pick = np.sort(rng.choice(n, size=min(n, TRAIN_SAMPLE), replace=False))
    sample = _gather(matrix, pick)
    mean = sample.mean(axis=0)
    centred = sample - mean
    values, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64) / max(1, len(sample) - 1))
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0, None), vectors[:, order]
    share = np.cumsum(values) / max(float(values.sum()), 1e-12)
    kept = int(min(dim, np.searchsorted(share, VARIANCE_KEPT) + 1))
    rotation = vectors[:, :kept].astype(np.float32)
    projected = centred @ rotation
    scale = (np.maximum(np.quantile(np.abs(projected), 0.9995, axis=0), 1e-6) / 127.0).astype(np.float32)
    centroids = _spherical_kmeans(sample, min(list_count(n), len(sample)), rng)
    return {"mean": mean.astype(np.float32), "rotation": rotation, "scale": scale, "centroids": centroids,
            "trained_n": np.array([n])}


def build(folder: Path, ids: np.ndarray, matrix: np.ndarray, *, trained: dict[str, np.ndarray] | None = None,
          seed: int = 11) -> dict[str, np.ndarray]:
    """Write an index of `matrix` (rows in `ids` order, ids ascending; an array or a memmap) into the empty
    `folder`; `trained` parts of an earlier build of a similar size are reused (no k-means). Returns the trained parts."""
    folder = Path(folder)
    n, dim = matrix.shape
    rng = np.random.default_rng(seed)
    if n == 0:
        trained = {"mean": np.zeros(dim, np.float32), "rotation": np.zeros((dim, 1), np.float32),
                   "scale": np.ones(1, np.float32), "centroids": np.zeros((0, dim), np.float32), "trained_n": np.array([0])}
    elif trained is None or trained["mean"].shape[0] != dim or not 0.5 <= n / max(1, int(trained["trained_n"][0])) <= 2:
        trained = _train(matrix, rng)
    lists = len(trained["centroids"])
    assign = (_assign(matrix, trained["centroids"]) if n > EXACT_BELOW and lists
              else np.zeros(n, dtype=np.int32))
    order = np.argsort(assign, kind="stable")
    kept = trained["rotation"].shape[1]
    rows_of_input = np.empty(n, dtype=np.int64)
    rows_of_input[order] = np.arange(n)
    # the source is read in order and each row written at its place in list order (the files are sized first),
    # so neither the source nor the output is ever held or mapped whole
    with open(folder / "vectors.f32", "wb") as floats, open(folder / "codes.i8", "wb") as codes:
        floats.truncate(n * dim * 4)
        codes.truncate(n * kept)
        float_fd, code_fd = floats.fileno(), codes.fileno()
        for i in range(0, n, 16384):
            block = _rows(matrix, i, i + 16384)
            projected = (block - trained["mean"]) @ trained["rotation"]
            quantized = np.clip(np.rint(projected / trained["scale"]), -127, 127).astype(np.int8)
            for j, row in enumerate(rows_of_input[i:i + len(block)].tolist()):
                os.pwrite(float_fd, block[j].tobytes(), row * dim * 4)
                os.pwrite(code_fd, quantized[j].tobytes(), row * kept)
    ids = np.asarray(ids, dtype=np.int64)
    np.save(folder / "ids.npy", ids[order])
    by_id = np.argsort(ids, kind="stable")
    np.save(folder / "sorted_ids.npy", ids[by_id])
    np.save(folder / "sorted_rows.npy", rows_of_input[by_id])
    np.save(folder / "offsets.npy", np.searchsorted(assign[order], np.arange(max(lists, 1) + 1)).astype(np.int64))
    for name in ("mean", "rotation", "scale", "centroids"):
        np.save(folder / f"{name}.npy", trained[name])
    np.savez(folder / "trained.npz", **trained)
    (folder / "meta.json").write_text(json.dumps({"format": FORMAT_VERSION, "n": n, "dim": dim, "kept_dims": kept,
                                                  "lists": lists}))
    return trained


# ------------------------------------------------------------------------------------------ folders


def stamp_name(generation: int, updated_at: str, config_key: str) -> str:
    """Folder name of one vector generation of one catalog (a recreated catalog at the same path gets another)."""
    digest = hashlib.sha1(f"{generation}|{updated_at}|{config_key}".encode()).hexdigest()[:16]
    return f"g{generation}-{digest}"


@contextlib.contextmanager
def _build_lock(base: Path) -> Iterator[None]:
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one builder per catalog; the others wait and then open its result
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _previous_trained(base: Path, keep: str) -> dict[str, np.ndarray] | None:
    for folder in sorted(base.glob("g*"), key=lambda p: p.stat().st_mtime, reverse=True):
        if folder.name != keep and (folder / "trained.npz").exists():
            with contextlib.suppress(Exception), np.load(folder / "trained.npz") as saved:
                return {name: saved[name] for name in saved.files}
    return None


def open_or_build(base: Path, name: str, load: Callable[[Path], tuple[np.ndarray, np.ndarray]],
                  generation: int = -1) -> DiskIndex:
    """The index folder `base/name`, built first when missing: `load(scratch)` returns (ids, matrix), and may
    write the matrix as a file under `scratch` (memory-mapped) instead of holding it in memory."""
    final = Path(base) / name
    if (final / "meta.json").exists():
        with contextlib.suppress(FileNotFoundError, ValueError):
            return DiskIndex(final, generation)
    with _build_lock(Path(base)):
        if not (final / "meta.json").exists():
            scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=base))
            try:
                ids, matrix = load(scratch)
                folder = scratch / "index"
                folder.mkdir()
                build(folder, ids, matrix, trained=_previous_trained(Path(base), name))
                del matrix
                os.replace(folder, final)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            for old in Path(base).glob("g*"):  # open mappings of older folders stay readable after the unlink
                if old.name != name:
                    shutil.rmtree(old, ignore_errors=True)
        return DiskIndex(final, generation)
