"""HTTP API latency and cover throughput: a real `soniquebay serve` on the 100k-track bench catalog, 8 clients."""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from soniquebay_assets.cli.common import add_data_dir
from soniquebay_assets.settings import ENV_CATALOG_URL, default_data_dir

# Bump when the bench catalog's content changes, so cached catalogs are rebuilt.
BENCH_CATALOG_VERSION = 1

TRACKS_PAGE = """query Page($after: String) { tracks(first: 50, after: $after) {
  pageInfo { endCursor hasNextPage }
  nodes { id title artists albumId albumTitle year durationS bpm key camelot genres matchStatus } } }"""
TRACK_DETAILS = """query Track($id: Int!) { track(id: $id) {
  id title artist artists featuredArtists trackNumber discNumber year durationS format bitrate path genres
  genresNormalized bpm bpmSource key mode camelot loudnessLufs energy danceability matchStatus moodTags
  moods { happy sad aggressive relaxed party }
  analysis { bpm bpmConfidence key mode keyConfidence camelot loudnessLufs loudnessRangeLu energy danceability
             moodHappy moodRelaxed spectralCentroid analyzedAt }
  external { source recordingId title artist score }
  cover { url(size: 300) }
  album { id title albumArtist year trackCount matchStatus musicbrainzReleaseId cover { url(size: 300) } } } }"""
SIMILAR = """query Similar($id: Int!) { similar(trackId: $id, k: 20) {
  score track { id title artists albumTitle bpm camelot } } }"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000, help="tracks in the bench catalog (default 100000)")
    parser.add_argument("--covers", type=int, default=1000,
                        help="albums given a distinct stored cover with 150/300/600 px thumbnails (default 1000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario (default 10)")
    parser.add_argument("--workers", type=int, default=None, help="server worker processes (default: one per core)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached bench catalog")
    add_data_dir(parser)


# ------------------------------------------------------------------------------------------ the catalog


def _bench_dir(args: argparse.Namespace) -> Path:
    root = args.data_dir.expanduser().resolve() if args.data_dir else default_data_dir()
    return root / "cache" / "bench-api" / f"n{args.n}-covers{args.covers}-seed{args.seed}-v{BENCH_CATALOG_VERSION}"


def build_catalog(folder: Path, *, n: int, covers: int, seed: int, fragment_cache: Path) -> dict:
    """The bench catalog: n distinct tracks through the real vectors pipeline (text embeddings reused from the
    `bench vectors` cache), and `covers` albums with a distinct picture in a real image store."""
    import shutil

    from soniquebay_assets.catalog import db
    from soniquebay_assets.catalog import vector_bench_data as bench_data
    from soniquebay_assets.library.bench_library import distinct_library
    from soniquebay_assets.pipeline import vectorize as vz

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    with db.connection(folder / "catalog.db") as conn:
        library = distinct_library(n, seed=seed)
        bench_data.insert_library(conn, library)
        cached = bench_data.load_fragment_cache(conn, str(fragment_cache))
        stats = vz.vectorize_shards(conn, None)
        bench_data.save_fragment_cache(conn, str(fragment_cache))
        album_ids = [r[0] for r in conn.execute("SELECT album_id FROM albums ORDER BY album_id")]
    covered = _store_covers(folder, album_ids, covers, seed)
    facts = {"tracks": n, "albums": len(album_ids), "vectorized": stats.vectorized,
             "texts_from_cache": cached, "texts_embedded": stats.fragments_encoded, "covers": covered,
             "build_seconds": round(time.perf_counter() - started, 1), "version": BENCH_CATALOG_VERSION}
    (folder / "built.json").write_text(json.dumps(facts), encoding="utf-8")
    return facts


def _picture(rng: random.Random, size: int = 1000) -> bytes:
    """A distinct JPEG cover: a two-colour gradient with a few shapes and grain (photo-like to the encoder)."""
    import io

    import numpy as np
    from PIL import Image, ImageDraw

    a = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
    b = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    pixels = a * (1 - ramp) + b * ramp
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 12, (size, size, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randrange(size // 12, size // 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


def _store_covers(folder: Path, album_ids: list[int], count: int, seed: int) -> int:
    from datetime import UTC, datetime

    from soniquebay_assets.artwork.image_store import ImageStore
    from soniquebay_assets.catalog import covers, db

    rng = random.Random(seed)
    store = ImageStore(folder / "covers")
    chosen = sorted(rng.sample(album_ids, min(count, len(album_ids))))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with db.connection(folder / "catalog.db") as conn, db.transaction(conn):
        for album_id in chosen:
            stored = store.store(_picture(rng))
            covers.upsert_cover(conn, "album", album_id, source="embedded", origin="bench", path=stored.path,
                                sha256=stored.sha256, mime=stored.mime, width=stored.width, height=stored.height,
                                byte_size=stored.byte_size, thumbnails=stored.thumbnails, now=now)
    return len(chosen)


# ------------------------------------------------------------------------------------------ the server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(folder: Path, workers: int) -> tuple[subprocess.Popen, str, float]:
    """`soniquebay serve` on the bench catalog; returns once /healthz says the vector index is loaded."""
    import httpx

    port = _free_port()
    env = {**os.environ, "SONIQUEBAY_DATA_DIR": str(folder), "SONIQUEBAY_COVERS_DIR": str(folder / "covers"),
           "SONIQUEBAY_API_TOKEN": "bench-token-" + "x" * 16}
    env.pop(ENV_CATALOG_URL, None)
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "soniquebay_assets.cli.main", "serve", "--data-dir", str(folder), "--port", str(port),
         "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    warm_answers = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read()[-2000:]}")
        try:
            health = httpx.get(f"{base}/healthz", timeout=2).json()
            # every worker must have its index: ask until several answers in a row say so
            warm_answers = warm_answers + 1 if health.get("vector_index_warm") else 0
            if warm_answers >= 4 * workers:
                return process, base, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise RuntimeError("the server did not become ready within 300 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _process_tree(pid: int) -> list[list[str]]:
    """/proc stat fields (after the command name) of a process and all its descendants (the server's workers)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        stats[int(entry.name)] = fields
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            found.append(stats[current])
        todo += children.get(current, [])
    return found


def process_tree_rss_mb(pid: int) -> float:
    return round(sum(int(f[21]) for f in _process_tree(pid)) * os.sysconf("SC_PAGE_SIZE") / 1e6, 1)


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server's processes so far."""
    return sum(int(f[11]) + int(f[12]) for f in _process_tree(pid)) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------ the clients


def _percentiles(samples: list[float]) -> dict:
    import numpy as np

    if not samples:
        return {"p50": None, "p95": None, "p99": None}
    return {f"p{q}": round(float(np.percentile(samples, q)), 2) for q in (50, 95, 99)}


def _scenario(port: int, clients: int, seconds: float, make_request, server_cpu=None) -> dict:
    """`clients` threads, each with its own keep-alive connection, sending requests back to back: the latency of
    each, failures, rate. The client is the standard library's http.client: about 0.13 ms of CPU per request
    here, where httpx took ~1.5 ms (it would have measured itself, not the server, on two shared cores)."""
    import http.client
    import threading

    latencies: list[float] = []
    failures: dict[str, int] = {}
    sizes: list[int] = []
    lock = threading.Lock()

    def one_client(number: int, until: float, record: bool) -> None:
        rng = random.Random(number * 7919 + int(record))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        try:
            while time.perf_counter() < until:
                method, url, body = make_request(rng)
                payload = json.dumps(body).encode("utf-8") if body is not None else None
                headers = {"Content-Type": "application/json"} if payload is not None else {}
                started = time.perf_counter()
                connection.request(method, url, body=payload, headers=headers)
                response = connection.getresponse()
                content = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if not record:
                    continue
                mine.append(elapsed)
                problem = None if response.status == 200 else f"HTTP {response.status}"
                if problem is None and body is not None and b'"errors"' in content:
                    problem = "GraphQL errors"
                with lock:
                    sizes.append(len(content))
                    if problem:
                        failures[problem] = failures.get(problem, 0) + 1
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    def phase(duration: float, record: bool) -> float:
        until = time.perf_counter() + duration
        threads = [threading.Thread(target=one_client, args=(i, until, record)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    phase(min(2.0, seconds / 4), False)
    cpu_before = server_cpu() if server_cpu else 0.0
    wall = phase(seconds, True)
    out = {"requests": len(latencies), "requests_per_second": round(len(latencies) / wall, 1),
           "latency_ms": _percentiles(latencies), "failures": failures,
           "mean_response_bytes": round(sum(sizes) / max(1, len(sizes)))}
    if server_cpu:  # load-independent: what one request costs the server's processes
        out["server_cpu_ms_per_request"] = round((server_cpu() - cpu_before) * 1000 / max(1, len(latencies)), 3)
    return out


def _cursors(base: str, pages: int) -> list[str | None]:
    """Cursors of the first `pages` pages of the default track listing (clients ask random ones)."""
    import httpx

    cursors: list[str | None] = [None]
    with httpx.Client(base_url=base, timeout=30) as client:
        while len(cursors) < pages:
            body = client.post("/graphql", json={"query": TRACKS_PAGE, "variables": {"after": cursors[-1]}}).json()
            info = body["data"]["tracks"]["pageInfo"]
            if not info["hasNextPage"]:
                break
            cursors.append(info["endCursor"])
    return cursors


def run(args: argparse.Namespace) -> dict:
    workers = args.workers or os.cpu_count() or 1
    result: dict = {"benchmark": "api", "n": args.n, "clients": args.clients, "server_workers": workers,
                    "cpu_count": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2)}
    folder = _bench_dir(args)
    built = folder / "built.json"
    fragment_cache = folder.parent.parent / "bench-vectors" / "fragments.db"
    if args.rebuild or not built.is_file():
        result["catalog_built"] = build_catalog(folder, n=args.n, covers=args.covers, seed=args.seed,
                                                fragment_cache=fragment_cache)
    else:
        result["catalog_reused"] = json.loads(built.read_text(encoding="utf-8"))
    result["catalog"] = str(folder / "catalog.db")

    import sqlite3

    with sqlite3.connect(f"file:{folder / 'catalog.db'}?mode=ro", uri=True) as conn:
        track_ids = [r[0] for r in conn.execute("SELECT track_id FROM tracks")]
        covered = [r[0] for r in conn.execute("SELECT entity_id FROM covers WHERE entity_type = 'album'")]
    process, base, startup = start_server(folder, workers)
    result["server_ready_seconds"] = round(startup, 2)
    try:
        cursors = _cursors(base, 40)
        scenarios = {
            "tracks_page_50": lambda rng: ("POST", "/graphql", {"query": TRACKS_PAGE,
                                                               "variables": {"after": rng.choice(cursors)}}),
            "track_details": lambda rng: ("POST", "/graphql", {"query": TRACK_DETAILS,
                                                              "variables": {"id": rng.choice(track_ids)}}),
            "similar_k20": lambda rng: ("POST", "/graphql", {"query": SIMILAR,
                                                            "variables": {"id": rng.choice(track_ids)}}),
            "cover_thumbnail_150": lambda rng: ("GET", f"/covers/album/{rng.choice(covered)}?size=150", None),
        }
        port = int(base.rsplit(":", 1)[1])
        for name, make in scenarios.items():
            result[name] = _scenario(port, args.clients, args.seconds, make,
                                     server_cpu=lambda: process_tree_cpu_s(process.pid))
        result["server_rss_mb"] = process_tree_rss_mb(process.pid)
    finally:
        stop_server(process)
    result["targets"] = {
        "tracks_page_p95_ms<=50": _p95(result["tracks_page_50"]) <= 50,
        "track_details_p95_ms<=50": _p95(result["track_details"]) <= 50,
        "similar_k20_p95_ms<=50": _p95(result["similar_k20"]) <= 50,
        "cover_thumbnails_per_second>=1000": result["cover_thumbnail_150"]["requests_per_second"] >= 1000,
        "no_failures": not any(result[s]["failures"] for s in scenarios),
    }
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    result["conditions"] = (
        f"{args.clients} keep-alive http.client connections in threads of one process on this machine, "
        f"{args.seconds:g} s per "
        f"scenario after a warm-up, against `soniquebay serve --workers {workers}` (a subprocess, SQLite catalog "
        f"of {args.n} distinct tracks with analysis and real-model vectors, {args.covers} albums with covers)")
    return result


def _p95(scenario: dict) -> float:
    value = scenario["latency_ms"]["p95"]
    return float("inf") if value is None else value
