"""Eight clients read through the API while a real `soniquebay scan` writes the catalog: no 5xx, no GraphQL error,
and every answer is one consistent moment of the catalog (each request reads one snapshot)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter

import httpx
import pytest

from soniquebay_assets_tests.api_support import ApiServer, build_catalog, write_library

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NEW_ALBUMS = tuple((f"Echo Artist {i}", f"Echo Album {i}", 5, "Rock", (10 * i, 90, 120), 100.0, "C", "major")
                   for i in range(8))
QUERY = """{ library { tracks albums }
  albums(first: 100) { totalCount nodes { id title trackCount tracks { id title albumId } } } }"""


def test_eight_readers_while_a_scan_writes(tmp_path):
    library = build_catalog(tmp_path)
    write_library(library.root / "more", NEW_ALBUMS)  # 40 new files
    write_library(library.root, (("Alpha Band", "Blue Horizon", 3, "Rock", None, 0, "A", "minor"),),
                  title_prefix="Retitled ")  # 3 changed files
    problems: list[str] = []
    statuses: Counter = Counter()
    track_totals: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            while not stop.is_set():
                response = client.post("/graphql", json={"query": QUERY})
                statuses[response.status_code] += 1
                body = response.json()
                if response.status_code != 200 or "errors" in body:
                    problems.append(f"{response.status_code}: {str(body)[:300]}")
                    continue
                data = body["data"]
                albums = data["albums"]["nodes"]
                # one snapshot: the albums' track counts add up to the library's, each album lists its own tracks
                if sum(a["trackCount"] for a in albums) != data["library"]["tracks"]:
                    problems.append(f"torn answer: album track counts {sum(a['trackCount'] for a in albums)} "
                                    f"!= library tracks {data['library']['tracks']}")
                if data["albums"]["totalCount"] != data["library"]["albums"] or len(albums) != len(
                        {a["id"] for a in albums}):
                    problems.append("torn answer: album count or duplicated album")
                for album in albums:
                    if len(album["tracks"]) != album["trackCount"] or any(
                            t["albumId"] != album["id"] for t in album["tracks"]):
                        problems.append(f"torn album {album['title']}: {album}")
                track_totals.add(data["library"]["tracks"])

    with ApiServer(library.data_root) as server:
        readers = [threading.Thread(target=reader) for _ in range(8)]
        for thread in readers:
            thread.start()
        try:
            scan = subprocess.run([sys.executable, "-m", "soniquebay_assets.cli.main", "scan", str(library.root),
                                   "--stages", "catalog", "--data-dir", str(library.data_root), "--json",
                                   "--no-progress"], env=server.env, capture_output=True, text=True, timeout=240)
            after = httpx.post(f"{server.base}/graphql", json={"query": QUERY}, timeout=30).json()["data"]
        finally:
            stop.set()
            for thread in readers:
                thread.join(timeout=60)
    assert scan.returncode == 0, scan.stderr[-2000:]
    assert not problems, problems[:5]
    assert set(statuses) == {200} and sum(statuses.values()) >= 40, statuses
    assert after["library"]["tracks"] == 15 + 40 and after["library"]["albums"] == 6 + 8
    retitled = [t["title"] for a in after["albums"]["nodes"] if a["title"] == "Blue Horizon" for t in a["tracks"]]
    assert retitled == ["Retitled Blue Horizon 1", "Retitled Blue Horizon 2", "Retitled Blue Horizon 3"]
    assert len(track_totals) >= 1 and max(track_totals) <= 55
