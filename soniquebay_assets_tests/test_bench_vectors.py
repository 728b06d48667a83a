"""The vectors benchmark measures distinct, really embedded tracks and keeps their text embeddings between runs."""

from __future__ import annotations

import argparse
import os

import pytest

from soniquebay_assets.cli import bench_vectors
from soniquebay_assets.library.bench_library import distinct_library
from soniquebay_assets_tests.vectors_support import text_model  # noqa: F401  (session fixture)


def test_library_has_no_two_tracks_alike():
    tracks = distinct_library(5000, seed=3)
    assert len(tracks) == 5000
    assert len({t["title"] for t in tracks}) == 5000
    albums = {(t["artist"], t["album"]) for t in tracks}
    assert len({a for _, a in albums}) == len(albums) > 300  # ~10 tracks per album, album titles distinct
    assert len({t["analysis"]["bpm"] for t in tracks}) == 5000
    assert len({t["analysis"]["energy"] for t in tracks}) > 4500  # only values clipped to 0 or 1 repeat
    assert distinct_library(200, seed=3) == tracks[:200]  # deterministic per seed


@pytest.mark.slow
@pytest.mark.usefixtures("text_model")
def test_second_run_takes_its_texts_from_the_cache(tmp_path):
    parser = argparse.ArgumentParser()
    bench_vectors.add_arguments(parser)
    args = parser.parse_args(["--n", "400", "--n-embed", "40", "--queries", "20", "--sqlite-queries", "5",
                              "--data-dir", str(tmp_path / "data"), "--workdir", str(tmp_path)])
    first = bench_vectors.run(args)
    assert first["library"]["vectorized"] == 400 and first["library"]["texts_embedded_this_run"] > 400
    assert first["index_vectors"] == 400 and first["recall_at_k"] == pytest.approx(1.0)
    second = bench_vectors.run(args)
    assert second["library"]["texts_embedded_this_run"] == 0
    assert second["library"]["texts_from_cache"] == first["library"]["fragment_cache_rows"]
    assert second["recall_at_k"] == first["recall_at_k"]


@pytest.mark.slow
@pytest.mark.usefixtures("text_model")
def test_recall_on_a_real_folder_scans_it_through_every_stage(tmp_path, make_audio, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "callers_home"))
    for n in range(6):
        make_audio(tmp_path / "music" / f"Band {n % 2}" / f"Album {n % 3}" / f"0{n}.flac", seconds=6.0,
                   title=f"Song {n}", artist=f"Band {n % 2}", album=f"Album {n % 3}")
    report = bench_vectors._corpus_recall(tmp_path / "music", k=3)
    assert report["tracks"] == 6 and report["vectors"] == 6 and report["exact_scan"] is True
    assert report["recall_at_k"] == pytest.approx(1.0)
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / "callers_home")  # the scan's own home is gone with it
