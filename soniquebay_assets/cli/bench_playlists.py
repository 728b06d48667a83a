"""Playlist generation over N distinct, really embedded tracks: p50/p95 per kind, clusters, peak RSS; and on a real
corpus the transitions of our playlists beside random orders of the same tracks (one JSON object)."""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from soniquebay_assets.cli.common import add_data_dir
from soniquebay_assets.settings import default_data_dir

TEXTS = ("calm piano, slow", "energetic rock", "happy pop for a party", "dark techno", "relaxed jazz in the evening",
         "sad acoustic folk", "fast drum and bass", "upbeat funk", "ambient electronic", "aggressive metal",
         "soul from the seventies", "latin dance", "quiet classical music", "reggae and dub", "chiptune game music")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000, help="distinct tracks in the library (default 100000)")
    parser.add_argument("--queries", type=int, default=40, help="playlists timed per kind (default 40)")
    parser.add_argument("--length", type=int, default=50, help="entries per playlist (default 50)")
    parser.add_argument("--clusters", type=int, default=50, help="cluster playlists over the library (default 50)")
    parser.add_argument("--seed", type=int, default=7,
                        help="library seed (default 7: the library `bench vectors` builds, so its text cache serves)")
    parser.add_argument("--corpus", type=Path, nargs="+", default=None, metavar="FOLDER",
                        help="real music folders (e.g. ../shared/corpus/music): the transition quality report")
    parser.add_argument("--rebuild", action="store_true", help="build the library catalog again, not from the cache")
    parser.add_argument("--workdir", type=Path, default=None, help="where temporary catalogs go")
    add_data_dir(parser)


def _percentiles(samples: list[float]) -> dict:
    import numpy as np

    return {"p50": round(float(np.percentile(samples, 50)), 1), "p95": round(float(np.percentile(samples, 95)), 1),
            "max": round(float(max(samples)), 1), "n": len(samples)}


def build_library(target: Path, n: int, seed: int, fragment_cache: Path) -> dict:
    """The bench library (catalog/vector_bench_data, library/bench_library) vectorized for real into `target`."""
    from soniquebay_assets.catalog import db
    from soniquebay_assets.catalog import vector_bench_data as bench_data
    from soniquebay_assets.library.bench_library import distinct_library
    from soniquebay_assets.pipeline import vectorize as vz

    started = time.perf_counter()
    partial = target.with_suffix(".building")
    for leftover in partial.parent.glob(partial.name + "*"):
        leftover.unlink()
    with db.connection(partial) as conn:
        bench_data.insert_library(conn, distinct_library(n, seed=seed))
        cached = bench_data.load_fragment_cache(conn, str(fragment_cache))
        stats = vz.vectorize_shards(conn, None)
        bench_data.save_fragment_cache(conn, str(fragment_cache))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    partial.replace(target)
    return {"built": True, "seconds": round(time.perf_counter() - started, 1), "vectorized": stats.vectorized,
            "texts_from_cache": cached, "texts_embedded": stats.fragments_encoded,
            "builder_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _requests(library, kind: str, count: int, length: int, rng):
    import numpy as np

    from soniquebay_assets.domain.playlists import PlaylistFilters, PlaylistRequest

    with_vectors = np.flatnonzero(library.vector_row >= 0)
    ids = library.track_ids
    for i in range(count):
        if kind == "similar":
            yield PlaylistRequest("similar", track=str(int(ids[rng.choice(with_vectors)])), length=length, seed=i)
        elif kind == "text":
            yield PlaylistRequest("text", text=TEXTS[i % len(TEXTS)], length=length, seed=i)
        elif kind == "filter":
            centre = float(rng.uniform(80, 160))
            genre = sorted({g for r in rng.choice(len(library), 5) for g in library.genres[r]})[:1]
            yield PlaylistRequest("filter", length=length, seed=i, filters=PlaylistFilters(
                bpm_min=centre - 15, bpm_max=centre + 15, energy_min=float(rng.uniform(0, 0.5)),
                genres=tuple(genre) if i % 2 else (), key="8A" if i % 3 == 0 else None,
                compatible_keys=i % 3 == 0))
        else:
            a, b = rng.choice(with_vectors, 2, replace=False)
            yield PlaylistRequest("path", from_track=str(int(ids[a])), to_track=str(int(ids[b])), length=length)


def measure(catalog: str, queries: int, length: int, clusters: int, seed: int) -> dict:
    """Runs in a fresh worker process, like an API or Dagster worker: load, then time the playlists."""
    import numpy as np

    from soniquebay_assets.catalog import db
    from soniquebay_assets.domain.playlists import PlaylistRequest
    from soniquebay_assets.library import embedder
    from soniquebay_assets.pipeline import playlists as pipeline

    out: dict = {}
    with db.connection(catalog) as conn:
        started = time.perf_counter()
        library = pipeline.library_of(conn)
        out["library_load_seconds"] = round(time.perf_counter() - started, 2)
        out["library_tracks"], out["library_vectors"] = len(library), int((library.vector_row >= 0).sum())
        started = time.perf_counter()
        model = embedder.load_model()
        out["model_load_seconds"] = round(time.perf_counter() - started, 2)
        rng = np.random.default_rng(seed)
        out["kinds"] = {}
        for kind in ("similar", "text", "filter", "path"):
            latencies, sizes = [], []
            for request in _requests(library, kind, queries, length, rng):
                t0 = time.perf_counter()
                # through the connection, as the API calls it: the catalog-state check is in every figure
                (playlist,) = pipeline.generate(conn, request, text_model=model)
                latencies.append((time.perf_counter() - t0) * 1000)
                sizes.append(len(playlist.entries))
            out["kinds"][kind] = {"ms": _percentiles(latencies), "mean_entries": round(float(np.mean(sizes)), 1),
                                  "full_length_share": round(float(np.mean([s == length for s in sizes])), 3)}
        started = time.perf_counter()
        parts = pipeline.generate(conn, PlaylistRequest("clusters", clusters=clusters, length=length, seed=seed))
        out["clusters"] = {"k": clusters, "seconds": round(time.perf_counter() - started, 2),
                           "playlists": len(parts), "entries": sum(len(p.entries) for p in parts),
                           "names": [p.description for p in parts[:5]]}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["torch_threads"] = _torch_threads()
    return out


def _torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def corpus_quality(folders: list[Path], seed: int, workdir: Path | None) -> dict:
    """Scan a real folder (catalog, analysis, vectors), then playlists of each kind beside random orders of the
    same tracks: mean BPM step between neighbours, share of Camelot-compatible transitions, artist repeats."""
    import numpy as np

    from soniquebay_assets.catalog import db
    from soniquebay_assets.domain.playlists import PlaylistFilters, PlaylistRequest
    from soniquebay_assets.pipeline import enrich, scan
    from soniquebay_assets.pipeline import playlists as pipeline
    from soniquebay_assets.pipeline import vectorize as vz

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        with db.connection(Path(tmp) / "catalog.db") as conn:
            plan = scan.plan_scan(conn, [f.expanduser().resolve() for f in folders])
            scan.run_catalog_chain(conn, ("scan", "extract", "insert"), plan.affected, plan.walk)
            enrich.enrich_shards(conn, sorted(plan.affected), data_dir=Path(tmp))
            vz.vectorize_shards(conn, None)
            library = pipeline.library_of(conn)
            rng = np.random.default_rng(seed)
            analysed = np.flatnonzero(~np.isnan(library.bpm) & (library.vector_row >= 0))
            picks = rng.choice(analysed, min(20, len(analysed)), replace=False)
            requests = [PlaylistRequest("similar", track=str(int(library.track_ids[r])), length=15) for r in picks]
            requests += [PlaylistRequest("filter", length=15, seed=s) for s in range(10)]
            requests += [PlaylistRequest("filter", length=15, seed=s, filters=PlaylistFilters(energy_min=0.5))
                         for s in range(5)]
            requests += [PlaylistRequest("clusters", clusters=4, length=15, seed=seed)]
            by_kind: dict[str, list[dict]] = {}
            for request in requests:
                for playlist in pipeline.generate(library, request):
                    if len(playlist.entries) >= 5:
                        by_kind.setdefault(request.kind, []).append(pipeline.quality_report(library, playlist))
    report = {"folders": [str(f) for f in folders], "tracks": len(library), "analysed": int(len(analysed))}
    for kind, reports in {**by_kind, "all": [r for rs in by_kind.values() for r in rs]}.items():
        report[kind] = {"playlists": len(reports)}
        for key in ("mean_bpm_step", "camelot_compatible_share", "artist_repeats_in_window"):
            ours = [r["ours"][key] for r in reports if r["ours"][key] is not None]
            random_order = [r["random_order"][key] for r in reports if r["random_order"][key] is not None]
            report[kind][key] = {"ours": round(float(np.mean(ours)), 3) if ours else None,
                                 "random_order": round(float(np.mean(random_order)), 3) if random_order else None}
    return report


def run(args: argparse.Namespace) -> dict:
    from soniquebay_assets.library.process_pool import process_pool

    result: dict = {"benchmark": "playlists", "n": args.n, "length": args.length, "cpu_count": os.cpu_count(),
                    "load_average_at_start": round(os.getloadavg()[0], 2)}
    root = args.data_dir.expanduser().resolve() if args.data_dir else default_data_dir()
    cache = root / "cache"
    catalog = cache / "bench-playlists" / f"library-{args.n}-{args.seed}.db"
    catalog.parent.mkdir(parents=True, exist_ok=True)
    if args.rebuild or not catalog.exists():
        result["library"] = build_library(catalog, args.n, args.seed, cache / "bench-vectors" / "fragments.db")
    else:
        result["library"] = {"built": False, "catalog": str(catalog)}
    # a fresh process measures, so its peak RSS is a playlist worker's, not the builder's (which embedded texts)
    with process_pool(1) as pool:
        result.update(pool.submit(measure, str(catalog), args.queries, args.length, args.clusters, args.seed).result())
    if args.corpus is not None:
        result["quality"] = corpus_quality(args.corpus, args.seed, args.workdir)
    result["targets"] = {
        **{f"{kind}_p95_ms<=200": result["kinds"][kind]["ms"]["p95"] <= 200 for kind in result["kinds"]},
        "clusters_seconds<=60": result["clusters"]["seconds"] <= 60,
        "peak_rss_mb<=1024": result["peak_rss_mb"] <= 1024,
    }
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    result["data"] = (f"{args.n} distinct synthetic tracks (library/bench_library.py: distinct titles, albums, artists "
                      "and analysis values, genre-shaped tempo and energy), vectorized with the real model; playlists "
                      f"of {args.length} entries generated through pipeline.playlists.generate(conn, request) in a "
                      "fresh worker process after it loaded the library and the model (their load times apart)")
    return result
