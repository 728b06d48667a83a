"""Embedding throughput, KNN latency p50/p95 and recall@k at N vectors (one JSON object)."""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from soniquebay_assets.domain.layout import SHARD_COUNT

_WORDS = (
    "midnight highway blue fire golden river shadow electric summer winter heart dream city lights broken "
    "silver rain ocean thunder velvet echo neon wild paper moon desert storm glass garden ghost northern "
    "lonely sugar crimson forever falling rising hollow secret morning violet distant stone honey dancing"
).split()
_GENRES = (
    "rock", "indie rock", "jazz", "bebop", "classical", "piano", "electronic", "house", "techno", "ambient",
    "hip hop", "soul", "funk", "blues", "country", "folk", "metal", "thrash metal", "punk", "pop", "synthpop",
    "reggae", "dub", "latin", "bossa nova", "soundtrack", "chiptune", "drum and bass", "trance", "r&b",
)  # fmt: skip
_KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the KNN index (default 100000)")
    parser.add_argument("--n-embed", type=int, default=2000, help="synthetic tracks really embedded (default 2000)")
    parser.add_argument("--queries", type=int, default=200, help="KNN queries timed (default 200)")
    parser.add_argument("--sqlite-queries", type=int, default=20, help="queries timed on sqlite-vec brute force")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--model", default=None, help="local sentence-transformers folder (default: packaged)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: by machine load)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary catalog goes")
    parser.add_argument("--catalog-url", default=None,
                        help="also store the KNN vectors in this PostgreSQL database (scratch schema, dropped after) "
                             "and time the same queries there")


def synthetic_library(n_tracks: int, rng: random.Random) -> list[dict]:
    """A library shaped like a real one: ~10-track albums, ~3 albums per artist, a few genres, analysed tracks."""
    tracks, album_no = [], 0
    while len(tracks) < n_tracks:
        artist = " ".join(rng.choice(_WORDS).title() for _ in range(rng.choice((1, 2, 2, 3))))
        genres = rng.sample(_GENRES, rng.choice((1, 1, 2)))
        for _ in range(rng.randint(1, 5)):
            album_no += 1
            album = " ".join(rng.choice(_WORDS).title() for _ in range(rng.randint(1, 3)))
            year = rng.randint(1960, 2024)
            base_bpm, key = rng.uniform(70, 170), rng.choice(_KEYS)
            for number in range(rng.randint(6, 14)):
                title = " ".join(rng.choice(_WORDS).title() for _ in range(rng.randint(1, 4)))
                tracks.append({
                    "title": title, "artist": artist, "album": f"{album} #{album_no}", "genres": genres, "year": year,
                    "shard": f"{album_no % SHARD_COUNT:02x}", "number": number,
                    "analysis": {"bpm": base_bpm + rng.uniform(-15, 15), "key": key,
                                 "mode": rng.choice(("major", "minor")), "energy": rng.random(),
                                 "danceability": rng.random(), "mood_happy": rng.random(),
                                 "mood_relaxed": rng.random(), "loudness_lufs": rng.uniform(-20, -6),
                                 "spectral_centroid": rng.uniform(800, 4000), "duration_s": rng.uniform(120, 420)},
                })  # fmt: skip
    return tracks[:n_tracks]


def _grow(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n vectors around the really embedded ones (each a small perturbation), L2-normalized."""
    base = real[rng.integers(0, len(real), n)]
    noisy = base + 0.02 * rng.standard_normal(base.shape).astype(np.float32)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def _postgresql_knn(args: argparse.Namespace, settings, data: np.ndarray, seeds: np.ndarray) -> dict:
    """The same vectors in a PostgreSQL catalog (BYTEA table), searched by the same in-memory index."""
    from soniquebay_assets.catalog import db, pg, vector_search, vectors
    from soniquebay_assets.catalog import vector_bench_data as bench_data

    out: dict = {"catalog": pg.redact(args.catalog_url)}
    with pg.scratch_schema(args.catalog_url, prefix="soniquebay_bench") as url:
        conn = db.open_catalog(url)
        try:
            vectors.reset_space(conn, model_name=settings.model_name, text_dim=settings.text_dim,
                                weights=settings.weights)
            bench_data.insert_bare_tracks(conn, args.n)
            started = time.perf_counter()
            bench_data.insert_vectors(conn, [(i + 1, data[i].tobytes()) for i in range(args.n)])
            out["insert_vectors_per_second"] = round(args.n / (time.perf_counter() - started))
            started = time.perf_counter()
            index = vector_search.get_index(conn)
            out["index_load_seconds"] = round(time.perf_counter() - started, 2)
            latencies, recalls = [], []
            for seed in seeds.tolist():
                t0 = time.perf_counter()
                found = vector_search.search_similar(conn, track_id=seed, k=args.k)
                latencies.append((time.perf_counter() - t0) * 1000)
                rows, _ = index.exact(index.matrix[seed - 1], args.k + 1)
                truth = [int(index.ids[r]) for r in rows.tolist() if int(index.ids[r]) != seed][: args.k]
                recalls.append(len({f.track_id for f in found} & set(truth)) / args.k)
            out["knn_ms"] = _percentiles(latencies)
            out["recall_at_k"] = round(float(np.mean(recalls)), 4)
            out["targets"] = {"p95_ms<=15": out["knn_ms"]["p95"] <= 15, "recall>=0.95": out["recall_at_k"] >= 0.95}
        finally:
            conn.close()
    return out


def _percentiles(samples: list[float]) -> dict:
    return {"p50": round(float(np.percentile(samples, 50)), 3), "p95": round(float(np.percentile(samples, 95)), 3)}


def run(args: argparse.Namespace) -> dict:
    from soniquebay_assets.catalog import db, vector_search, vectors
    from soniquebay_assets.catalog import vector_bench_data as bench_data
    from soniquebay_assets.domain import embedding_text as et
    from soniquebay_assets.library import embedder
    from soniquebay_assets.pipeline import vectorize as vz

    rng = random.Random(args.seed)
    nrng = np.random.default_rng(args.seed)
    result: dict = {"benchmark": "vectors", "n": args.n, "k": args.k}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        # 1. embedding throughput through the real pipeline (fragment cache starts empty)
        started = time.perf_counter()
        model = embedder.load_model(args.model, threads=args.threads)
        import torch

        result["model"] = model.name
        result["torch_threads"] = torch.get_num_threads()
        result["load_average_at_start"] = round(os.getloadavg()[0], 2)
        result["model_load_seconds"] = round(time.perf_counter() - started, 2)
        conn = db.open_catalog(Path(tmp) / "embed.db")
        library = synthetic_library(args.n_embed, rng)
        bench_data.insert_library(conn, library)
        started, cpu_started = time.perf_counter(), time.process_time()
        stats = vz.vectorize_shards(conn, None, model=args.model)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        result["embedding"] = {
            "tracks": stats["vectorized"], "seconds": round(seconds, 2),
            "tracks_per_second": round(stats["vectorized"] / seconds, 1),
            # CPU time of this process: what the stage costs on cores it does not share with other jobs
            "tracks_per_cpu_second": round(stats["vectorized"] / cpu_seconds, 1) if cpu_seconds else None,
            "texts_embedded": stats["fragments_encoded"],
            "texts_per_second": round(stats["fragments_encoded"] / stats["encode_seconds"], 1) if stats["encode_seconds"] else None,
            "albums": len({t["album"] for t in library}), "artists": len({t["artist"] for t in library}),
        }  # fmt: skip
        sample = [et.embedding_text(t.text) for t in vectors.read_track_inputs(conn)[:100]]
        started = time.perf_counter()
        model.encode(sample)
        result["embedding"]["one_sentence_per_track_tracks_per_second"] = round(len(sample) / (time.perf_counter() - started), 1)
        settings = vectors.read_settings(conn)
        _, real = vectors.load_matrix(conn, settings.dim)
        conn.close()

        # 2. KNN at n vectors stored in sqlite-vec, searched through the public API
        conn = db.open_catalog(Path(tmp) / "knn.db")
        vectors.load_extension(conn)
        space = vectors.reset_space(conn, model_name=settings.model_name, text_dim=settings.text_dim, weights=settings.weights)
        data = _grow(real, args.n, nrng)
        bench_data.insert_bare_tracks(conn, args.n)
        started = time.perf_counter()
        bench_data.insert_vectors(conn, [(i + 1, data[i].tobytes()) for i in range(args.n)])
        result["insert_vectors_per_second"] = round(args.n / (time.perf_counter() - started))
        started = time.perf_counter()
        index = vector_search.get_index(conn)
        result["index_load_seconds"] = round(time.perf_counter() - started, 2)
        assert space.dim == index.matrix.shape[1]

        seeds = nrng.choice(args.n, size=args.queries, replace=False) + 1
        latencies, recalls = [], []
        for seed in seeds.tolist():
            t0 = time.perf_counter()
            found = vector_search.search_similar(conn, track_id=seed, k=args.k)
            latencies.append((time.perf_counter() - t0) * 1000)
            rows, _ = index.exact(index.matrix[seed - 1], args.k + 1)
            truth = [int(index.ids[r]) for r in rows.tolist() if int(index.ids[r]) != seed][: args.k]
            recalls.append(len({f.track_id for f in found} & set(truth)) / args.k)
        result["knn_ms"] = _percentiles(latencies)
        result["recall_at_k"] = round(float(np.mean(recalls)), 4)
        result["recall_min"] = round(float(np.min(recalls)), 2)

        sqlite_ms, agree = [], []
        for seed in seeds[: args.sqlite_queries].tolist():
            t0 = time.perf_counter()
            exact = vector_search.search_similar(conn, track_id=seed, k=args.k, method="sqlite")
            sqlite_ms.append((time.perf_counter() - t0) * 1000)
            fast = vector_search.search_similar(conn, track_id=seed, k=args.k)
            agree.append(len({f.track_id for f in fast} & {e.track_id for e in exact}) / args.k)
        result["sqlite_vec_exact_ms"] = _percentiles(sqlite_ms) if sqlite_ms else None
        result["recall_vs_sqlite_vec_exact"] = round(float(np.mean(agree)), 4) if agree else None
        conn.close()
        if args.catalog_url:
            result["postgresql"] = _postgresql_knn(args, settings, data, seeds)
    result["targets"] = {
        "tracks_per_second>=150": result["embedding"]["tracks_per_second"] >= 150,
        "p95_ms<=15": result["knn_ms"]["p95"] <= 15,
        "recall>=0.95": result["recall_at_k"] >= 0.95,
    }
    result["sqlite_driver"] = db.detect_driver().name
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    result["data"] = (
        f"{args.n_embed} synthetic tracks (albums/artists/genres/analysis) embedded with the real model; "
        f"{args.n} KNN vectors = those embeddings + small Gaussian noise, stored in sqlite-vec"
    )
    return result
