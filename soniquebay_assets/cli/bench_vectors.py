"""Embedding throughput, KNN latency p50/p95 and recall@k over N distinct, really embedded tracks (one JSON object)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from soniquebay_assets.cli.common import add_data_dir
from soniquebay_assets.settings import ENV_CATALOG_URL, default_data_dir

if TYPE_CHECKING:  # numpy is imported where used: every `soniquebay` command imports this module
    import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000,
                        help="distinct tracks embedded and indexed for the KNN part (default 100000)")
    parser.add_argument("--n-embed", type=int, default=2000,
                        help="tracks embedded from an empty cache to time embedding throughput (default 2000)")
    parser.add_argument("--queries", type=int, default=200, help="KNN queries timed (default 200)")
    parser.add_argument("--sqlite-queries", type=int, default=20, help="queries timed on sqlite-vec brute force")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--model", default=None, help="local sentence-transformers folder (default: packaged)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: by machine load)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary catalogs go")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a real music folder (e.g. ../shared/corpus): also report recall on its catalog")
    add_data_dir(parser)


def _postgresql_knn(args: argparse.Namespace, settings, matrix: np.ndarray) -> dict:
    """The same vectors in a PostgreSQL catalog (BYTEA table), searched by the same in-memory index."""
    from soniquebay_assets.catalog import db, pg, vectors
    from soniquebay_assets.catalog import vector_bench_data as bench_data

    out: dict = {"catalog": pg.redact(args.catalog_url)}
    with pg.scratch_schema(args.catalog_url, prefix="soniquebay_bench") as url:
        with db.connection(url) as conn:
            vectors.reset_space(conn, model_name=settings.model_name, text_dim=settings.text_dim,
                                weights=settings.weights)
            bench_data.insert_bare_tracks(conn, len(matrix))
            started = time.perf_counter()
            bench_data.insert_vectors(conn, [(i + 1, matrix[i].tobytes()) for i in range(len(matrix))])
            out["insert_vectors_per_second"] = round(len(matrix) / (time.perf_counter() - started))
            out.update(_knn_figures(conn, args, sqlite_exact=False))
    return out


def _percentiles(samples: list[float]) -> dict:
    import numpy as np
    return {"p50": round(float(np.percentile(samples, 50)), 3), "p95": round(float(np.percentile(samples, 95)), 3)}


def run(args: argparse.Namespace) -> dict:
    import torch

    from soniquebay_assets.catalog import db, vectors
    from soniquebay_assets.catalog import vector_bench_data as bench_data
    from soniquebay_assets.domain import embedding_text as et
    from soniquebay_assets.library import embedder
    from soniquebay_assets.library.bench_library import distinct_library
    from soniquebay_assets.pipeline import vectorize as vz

    result: dict = {"benchmark": "vectors", "n": args.n, "k": args.k, "cpu_count": os.cpu_count(),
                    "load_average_at_start": round(os.getloadavg()[0], 2)}
    # the data dir only keeps the fragment cache: --catalog-url names a server for the KNN comparison, never a
    # catalog this benchmark writes its library into
    root = args.data_dir.expanduser().resolve() if args.data_dir else default_data_dir()
    cache_file = root / "cache" / "bench-vectors" / "fragments.db"
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        # 1. embedding throughput through the real pipeline, from an empty fragment cache
        started = time.perf_counter()
        model = embedder.load_model(args.model, threads=args.threads)
        result["model"] = model.name
        result["torch_threads"] = torch.get_num_threads()
        result["model_load_seconds"] = round(time.perf_counter() - started, 2)
        with db.connection(Path(tmp) / "embed.db") as conn:
            library = distinct_library(args.n_embed, seed=args.seed + 1)
            bench_data.insert_library(conn, library)
            started, cpu_started = time.perf_counter(), time.process_time()
            stats = vz.vectorize_shards(conn, None, model=args.model)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            result["embedding"] = {
                "tracks": stats.vectorized, "seconds": round(seconds, 2),
                "tracks_per_second": round(stats.vectorized / seconds, 1),
                # CPU time of this process: what the stage costs on cores it does not share with other jobs
                "tracks_per_cpu_second": round(stats.vectorized / cpu_seconds, 1) if cpu_seconds else None,
                "texts_embedded": stats.fragments_encoded,
                "texts_per_second": round(stats.fragments_encoded / stats.encode_seconds, 1) if stats.encode_seconds else None,
                "albums": len({t["album"] for t in library}), "artists": len({t["artist"] for t in library}),
            }  # fmt: skip
            sample = [et.embedding_text(t.text) for t in vectors.read_track_inputs(conn)[:100]]
            started = time.perf_counter()
            model.encode(sample)
            result["embedding"]["one_sentence_per_track_tracks_per_second"] = round(len(sample) / (time.perf_counter() - started), 1)

        # 2. n distinct tracks vectorized by the same pipeline; their text fragments are kept between runs
        with db.connection(Path(tmp) / "knn.db") as conn:
            library = distinct_library(args.n, seed=args.seed)
            bench_data.insert_library(conn, library)
            cached_before = bench_data.load_fragment_cache(conn, str(cache_file))
            started = time.perf_counter()
            stats = vz.vectorize_shards(conn, None, model=args.model)
            result["library"] = {
                "tracks": len(library), "distinct_titles": len({t["title"] for t in library}),
                "albums": len({t["album"] for t in library}), "artists": len({t["artist"] for t in library}),
                "vectorized": stats.vectorized, "texts_embedded_this_run": stats.fragments_encoded,
                "texts_from_cache": cached_before, "vectorize_seconds": round(time.perf_counter() - started, 1),
                "fragment_cache": str(cache_file),
            }  # fmt: skip
            result["library"]["fragment_cache_rows"] = bench_data.save_fragment_cache(conn, str(cache_file))
            result.update(_knn_figures(conn, args))
            if args.catalog_url:
                settings = vectors.read_settings(conn)
                _, matrix = vectors.load_matrix(conn, settings.dim)
                result["postgresql"] = _postgresql_knn(args, settings, matrix)
    if args.corpus is not None:
        result["corpus"] = _corpus_recall(args.corpus, args.k)
    result["targets"] = {
        "tracks_per_second>=150": result["embedding"]["tracks_per_second"] >= 150,
        "p95_ms<=15": result["knn_ms"]["p95"] <= 15,
        "recall>=0.95": result["recall_at_k"] >= 0.95,
    }
    result["sqlite_driver"] = db.detect_driver().name
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    result["data"] = (
        f"{args.n} distinct synthetic tracks (distinct titles, albums, artists and analysis values; genre-shaped "
        f"tempo/energy) embedded with the real model through the vectors pipeline, searched through the public API; "
        f"throughput timed on {args.n_embed} more tracks from an empty cache"
    )
    return result


def _recall(index, search, seeds, k: int) -> float:
    """Mean share of the exact top-k (seed excluded) that `search(seed)` returns."""
    import numpy as np
    recalls = []
    for seed in seeds:
        row = index.position[seed]
        rows, _ = index.exact(index.matrix[row], k + 1)
        truth = {track for track in (int(index.ids[r]) for r in rows.tolist()) if track != seed}
        truth = set(sorted(truth, key=lambda t: -float(index.matrix[index.position[t]] @ index.matrix[row]))[:k])
        recalls.append(len(set(search(seed)) & truth) / max(1, len(truth)))
    return round(float(np.mean(recalls)), 4) if recalls else None


def _knn_figures(conn, args: argparse.Namespace, *, sqlite_exact: bool = True) -> dict:
    """Latency and recall@k of the default search (in-memory index) and of sqlite-vec's exact KNN."""
    import numpy as np

    from soniquebay_assets.catalog import vector_search

    out: dict = {}
    started = time.perf_counter()
    index = vector_search.get_index(conn)
    out["index_load_seconds"] = round(time.perf_counter() - started, 2)
    out["index_vectors"] = len(index)
    rng = np.random.default_rng(args.seed)
    seeds = [int(index.ids[i]) for i in rng.choice(len(index), size=min(args.queries, len(index)), replace=False)]
    latencies, found = [], {}
    for seed in seeds:
        t0 = time.perf_counter()
        found[seed] = [f.track_id for f in vector_search.search_similar(conn, track_id=seed, k=args.k)]
        latencies.append((time.perf_counter() - t0) * 1000)
    out["knn_ms"] = _percentiles(latencies)
    out["recall_at_k"] = _recall(index, found.__getitem__, seeds, args.k)
    sqlite_ms, agree = [], []
    for seed in seeds[: args.sqlite_queries] if sqlite_exact else []:
        t0 = time.perf_counter()
        exact = vector_search.search_similar(conn, track_id=seed, k=args.k, method="sqlite")
        sqlite_ms.append((time.perf_counter() - t0) * 1000)
        agree.append(len(set(found[seed]) & {e.track_id for e in exact}) / args.k)
    out["sqlite_vec_exact_ms"] = _percentiles(sqlite_ms) if sqlite_ms else None
    out["recall_vs_sqlite_vec_exact"] = round(float(np.mean(agree)), 4) if agree else None
    return out


def _corpus_recall(corpus: Path, k: int) -> dict:
    """Scan a real folder (catalog, analysis, vectors) and measure recall@k of the default search against exact search."""
    # this scan goes to its own SQLite file and Dagster home, both deleted after: the caller's come back
    saved = {name: os.environ.pop(name, None) for name in (ENV_CATALOG_URL, "DAGSTER_HOME")}
    try:
        return _scan_and_measure(corpus, k)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _scan_and_measure(corpus: Path, k: int) -> dict:
    from soniquebay_assets.catalog import db, vector_search, vectors
    from soniquebay_assets.cli.common import use_dagster_home
    from soniquebay_assets.cli.scan import SCAN_STAGES
    from soniquebay_assets.dagster_defs.scan_runs import scan_library
    from soniquebay_assets.settings import DataDir

    with tempfile.TemporaryDirectory() as tmp:
        data = DataDir(Path(tmp)).ensure()
        use_dagster_home(data)
        summary = scan_library([corpus.expanduser().resolve()], data.root,
                               [*SCAN_STAGES["catalog"], *SCAN_STAGES["enrich"], *SCAN_STAGES["vectors"]])
        with db.connection(data.catalog_path) as conn:
            vectors.load_extension(conn)
            index = vector_search.get_index(conn)
            seeds = [int(i) for i in index.ids.tolist()]

            def default(seed: int) -> list[int]:
                return [f.track_id for f in vector_search.search_similar(conn, track_id=seed, k=k)]

            return {"folder": str(corpus), "tracks": summary.get("tracks"), "vectors": len(index),
                    "recall_at_k": _recall(index, default, seeds, k),
                    # below this size the default search scores every vector exactly instead of bit codes
                    "exact_scan": len(index) <= max(vector_search.EXACT_BELOW,
                                                    vector_search.CANDIDATES_PER_RESULT * k)}

