"""The similar-track index alone at sizes the machine cannot embed: build time, p50/p95, recall@10, resident memory.

Every figure of the search side comes from whole child processes (spawned), so the resident memory is the index's
and not the benchmark's.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from pathlib import Path
from typing import Any

TEXT_QUERIES = (
    "calm piano music for a rainy evening", "fast aggressive metal", "happy summer pop songs", "slow sad jazz ballad",
    "electronic dance music with a heavy beat", "acoustic folk from the 1970s", "relaxed ambient soundscape",
    "upbeat funk with a groove", "dark techno", "romantic soul music", "punk rock from the 1980s",
    "classical string music", "reggae for a sunny day", "hip hop with a slow tempo", "energetic drum and bass",
    "quiet instrumental music for studying", "country songs about the road", "blues guitar", "90s house music",
    "latin bossa nova",
)  # fmt: skip


def rss_mb() -> dict[str, float]:
    """This process's resident memory now (VmRSS, and its anonymous and file-backed parts) and its peak, in MB."""
    figures = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                figures[name] = round(int(value.split()[0]) / 1024, 1)
    return figures


def vectors_file(cache: Path, n: int, seed: int, model: str | None = None) -> tuple[Path, int, dict]:
    """The cached file of n composed vectors (built once with the real model); returns (path, dim, facts)."""
    import numpy as np

    from soniquebay_assets.library import embedder
    from soniquebay_assets.library.bench_library import composed_vectors

    cache.mkdir(parents=True, exist_ok=True)
    dim = 403
    path = cache / f"composed2-{n}-{seed}.f32"
    facts: dict[str, Any] = {"vectors_file": str(path)}
    if not path.exists():
        started = time.perf_counter()
        text_model = embedder.load_model(model)
        scratch = path.with_suffix(".part")
        out = np.lib.format.open_memmap(scratch.with_suffix(".npy"), mode="w+", dtype=np.float32,
                                        shape=(n, text_model.dimension + 19))
        composed_vectors(text_model.encode, n, seed, out=out)
        dim = out.shape[1]
        out.flush()
        del out
        data = np.load(scratch.with_suffix(".npy"), mmap_mode="r")
        with open(scratch, "wb") as handle:
            for i in range(0, n, 65536):
                handle.write(np.ascontiguousarray(data[i:i + 65536]).tobytes())
        del data
        scratch.with_suffix(".npy").unlink()
        os.replace(scratch, path)
        facts["compose_seconds"] = round(time.perf_counter() - started, 1)
    dim = os.path.getsize(path) // (4 * n)
    return path, dim, facts


def _build_child(source: str, n: int, dim: int, folder: str, queue: Any) -> None:
    import numpy as np

    from soniquebay_assets.catalog import vector_index

    started, cpu = time.perf_counter(), time.process_time()
    matrix = np.memmap(source, dtype=np.float32, mode="r", shape=(n, dim))
    Path(folder).mkdir(parents=True)
    vector_index.build(Path(folder), np.arange(1, n + 1, dtype=np.int64), matrix)
    queue.put({"build_s": round(time.perf_counter() - started, 1), "build_cpu_s": round(time.process_time() - cpu, 1),
               "build_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


def _search_child(folder: str, seeds: list[int], text_queries: list[Any], k: int, queue: Any) -> None:
    """Open the index as `similar` does and time searches by seed row and by text vector."""
    import numpy as np

    from soniquebay_assets.catalog import vector_index

    before = rss_mb()
    started = time.perf_counter()
    index = vector_index.DiskIndex(Path(folder))
    open_ms = (time.perf_counter() - started) * 1000
    count = max(1000, 100 * k)  # the candidate count search_similar asks of the index
    found, latencies, cpu = [], [], []
    for seed in seeds:
        t0, c0 = time.perf_counter(), time.process_time()
        query = index.read_rows(np.array([index.position[seed]]))[0]
        rows, _ = index.ranked(query, count)
        ids = [int(i) for i in index.ids[rows[:k + 1]].tolist() if int(i) != seed][:k]
        latencies.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        found.append(ids)
    text_found, text_latencies = [], []
    for query in text_queries:
        t0 = time.perf_counter()
        rows, _ = index.ranked(np.asarray(query, dtype=np.float32), count, wide=True)  # as `similar --text`
        text_latencies.append((time.perf_counter() - t0) * 1000)
        text_found.append([int(i) for i in index.ids[rows[:k]].tolist()])
    after = rss_mb()
    queue.put({"open_ms": round(open_ms, 1), "latencies": latencies, "cpu": cpu, "found": found, "text_latencies": text_latencies,
               "text_found": text_found, "rss_before": before, "rss_after": after})


def _exact_top(matrix: Any, queries: Any, k: int, exclude: list[int | None]) -> list[list[int]]:
    """Exact top-k ids (row + 1) of each query by one chunked pass over the vectors."""
    import numpy as np

    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(matrix), 65536):
        scores = queries @ np.asarray(matrix[start:start + 65536]).T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, rows], axis=1)
        keep = np.argpartition(-scores, min(k + 1, scores.shape[1] - 1), axis=1)[:, :k + 1]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_rows = np.take_along_axis(rows, keep, axis=1)
    out = []
    for q in range(len(queries)):
        order = np.argsort(-best_scores[q], kind="stable")
        ids = [int(r) + 1 for r in best_rows[q][order]]
        out.append([i for i in ids if i != exclude[q]][:k])
    return out


def _in_child(target: Any, *args: Any) -> dict:
    """Run target(*args, queue) in a spawned process and return what it puts; an error if it dies first."""
    import queue as queues

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=target, args=(*args, results))
    child.start()
    try:
        while True:
            try:
                return results.get(timeout=2)
            except queues.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"{target.__name__} exited {child.exitcode} without a result") from None
    finally:
        child.join()


def _percentiles(samples: list[float]) -> dict:
    import numpy as np

    return {"p50": round(float(np.percentile(samples, 50)), 2), "p95": round(float(np.percentile(samples, 95)), 2)}


def measure(cache: Path, n: int, *, seed: int = 5, queries: int = 200, k: int = 10, model: str | None = None,
            reuse_index: bool = False) -> dict:
    """Compose (once), index and search n vectors; one dict of figures with their conditions."""
    import numpy as np

    from soniquebay_assets.domain import embedding_text as et
    from soniquebay_assets.library import embedder

    result: dict[str, Any] = {"vectors": n, "k": k, "queries": queries, "load_average_at_start": round(os.getloadavg()[0], 2)}
    source, dim, facts = vectors_file(cache, n, seed, model)
    result.update(facts)
    result["data"] = (f"{n} vectors composed like the vectors stage composes them from real all-MiniLM-L6-v2 "
                      "embeddings of the field texts of 8,000 distinct tracks (album fields shared by 10 tracks, "
                      "titles drawn per track, analysis words and audio features from a track of the same pool "
                      "album): synthetic but real-model distributed")
    folder = cache / f"index-{n}-{seed}"
    import shutil

    if (folder / "meta.json").exists() and reuse_index:
        result["index_reused"] = True
    else:
        shutil.rmtree(folder, ignore_errors=True)
        result.update(_in_child(_build_child, str(source), n, dim, str(folder)))
    result["index_disk_mb"] = {name: round(os.path.getsize(folder / name) / 2**20, 1)
                               for name in ("codes.i8", "vectors.f32", "ids.npy", "centroids.npy")}
    text_model = embedder.load_model(model)
    texts = [et.query_vector(v, et.Weights()) for v in text_model.encode(list(TEXT_QUERIES))]
    rng = np.random.default_rng(seed)
    seeds = sorted(int(s) + 1 for s in rng.choice(n, size=min(queries, n), replace=False))
    searched = _in_child(_search_child, str(folder), seeds, texts, k)
    matrix = np.memmap(source, dtype=np.float32, mode="r", shape=(n, dim))
    seed_vectors = np.stack([np.asarray(matrix[s - 1]) for s in seeds])
    truth = _exact_top(matrix, seed_vectors, k, seeds)
    text_truth = _exact_top(matrix, np.stack(texts).astype(np.float32), k, [None] * len(texts))
    recall = [len(set(f) & set(t)) / k for f, t in zip(searched["found"], truth, strict=True)]
    text_recall = [len(set(f) & set(t)) / k for f, t in zip(searched["text_found"], text_truth, strict=True)]
    before, after = searched["rss_before"], searched["rss_after"]
    result.update({
        "index_open_ms": searched["open_ms"],
        "similar_ms": _percentiles(searched["latencies"]),
        # CPU per query: what a query costs when it has a core to itself (the wall figures carry the machine's load)
        "similar_cpu_ms": _percentiles(searched["cpu"]), "similar_text_ms": _percentiles(searched["text_latencies"]),
        "similar_recall_at_10": round(float(np.mean(recall)), 4),
        "similar_text_recall_at_10": round(float(np.mean(text_recall)), 4),
        # what the index added to a fresh Python + numpy process, after every query of the run
        "index_rss_mb": round(after["VmRSS"] - before["VmRSS"], 1),
        "search_process_rss_mb": after,
        "load_average_at_end": round(os.getloadavg()[0], 2),
    })  # fmt: skip
    return result
