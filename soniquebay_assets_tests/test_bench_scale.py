"""`soniquebay bench scale` builds a tiny real library once and measures every scan phase on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from soniquebay_assets.cli import bench_scale
from soniquebay_assets.library.synthetic import build_scale_library


def test_scale_library_has_real_formats_in_proportion(tmp_path):
    import mutagen

    library = build_scale_library(tmp_path / "lib", 200, workers=1)
    files = sorted(p for p in library.rglob("*") if p.is_file())
    assert len(files) == 200
    shares = Counter(p.suffix for p in files)
    assert shares[".mp3"] > shares[".flac"] > shares[".ogg"] > 0 and shares[".m4a"] > 0
    assert abs(shares[".mp3"] / 200 - 0.45) < 0.1
    tags = mutagen.File(files[0], easy=True)
    assert tags is not None and tags.get("title") and tags.info.length < 1.5
    assert len({p.parent for p in files}) >= 200 // 12  # ~10 tracks per album folder


@pytest.mark.slow
@pytest.mark.postgresql
def test_bench_scale_runs_every_phase_on_both_catalogs(tmp_path, pg_server):
    parser = argparse.ArgumentParser()
    bench_scale.add_arguments(parser)
    url = pg_server.url
    args = parser.parse_args(["--files", "120", "--cache", str(tmp_path / "cache"), "--catalog-url", url,
                              "--index-vectors", "0"])
    result = bench_scale.run(args)
    assert result["files"] == 120
    for backend in ("sqlite", "postgresql"):
        figures = result[backend]
        for key in ("cold_s", "noop_s", "one_file_s", "peak_rss_mb", "sensor_tick_s", "catalog_mb"):
            assert figures[key] > 0, (backend, key)
        scans = figures["scans"]
        assert scans["cold"]["tracks"] == 120 and scans["cold"]["new"] == 120
        assert scans["noop"]["new"] + scans["noop"]["changed"] == 0
        assert scans["one_file"]["changed"] == 1
        assert scans["album_added"]["tracks"] > 120 and figures["sensor_tick"]["files"] == 120
        assert figures["event_log_rows_added"]["cold"] > 0
    # the library went back to what it was: a second run reuses it unchanged
    again = bench_scale.library_for(tmp_path / "cache", 120)
    assert again[1] is True and sum(1 for p in again[0].rglob("*") if p.is_file()) == 120
