"""`soniquebay export`: a real scanned and analysed library written as CSV, Parquet and JSON lines, read back
with pandas, equals the catalog's own track listing."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.catalog.queries import EXPORT_TAG_COLUMNS, list_tracks
from soniquebay_assets.cli.main import main
from soniquebay_assets.pipeline.enrich import enrich_shards
from soniquebay_assets.pipeline.export import LIST_SEPARATOR
from soniquebay_assets_tests.audio_factory import write_tagged
from soniquebay_assets_tests.scan_helpers import scan_catalog


@pytest.fixture(scope="module")
def exported_library(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    root, data = base / "lib", base / "data"
    write_tagged(root / "Duo" / "Pair" / "01 - First.flac", seconds=4.0, title="First", artist=["Ann", "Bob"],
                 album="Pair", albumartist="Duo", genre=["Rock", "Jazz"], tracknumber=1, date="2001-02-03")
    write_tagged(root / "Duo" / "Pair" / "02 - Second.mp3", seconds=4.0, title="Second, with a comma",
                 artist="Ann feat. Cy", album="Pair", albumartist="Duo", genre="Rock", tracknumber=2)
    write_tagged(root / "Solo" / "03 - Untagged.ogg", seconds=4.0)
    conn = open_catalog(data / "catalog.db")
    try:
        shards = scan_catalog(conn, [root])
        enrich_shards(conn, shards, data_dir=data, workers=1)
        expected = list(list_tracks(conn, more_columns=EXPORT_TAG_COLUMNS))
    finally:
        conn.close()
    return data, expected


def _export(data, fmt, target) -> None:
    assert main(["export", "--data-dir", str(data), "--format", fmt, "--output", str(target)]) == 0


def _same(value, wanted) -> bool:
    if wanted is None:
        return value is None or (not isinstance(value, (list, str)) and pd.isna(value))
    if isinstance(wanted, float):
        return math.isclose(float(value), wanted, rel_tol=1e-9)
    if isinstance(wanted, bool):
        return bool(value) == wanted
    return value == wanted


SCALARS = ("track_id", "path", "title", "album", "album_artist", "track_number", "year", "duration_s", "format",
           "date", "bpm", "key", "loudness_lufs", "analysis_status", "quality_score", "compilation", "match_status")


def test_parquet_and_jsonl_round_trip_with_lists(exported_library, tmp_path):
    data, expected = exported_library
    assert all(t["analysis_status"] and t["loudness_lufs"] is not None for t in expected)  # analysis is there
    assert {t["match_status"] for t in expected} == {"pending"}  # no release id tagged, online stage not run yet
    for fmt, read in (("parquet", pd.read_parquet), ("jsonl", lambda p: pd.read_json(p, lines=True, dtype=False))):
        target = tmp_path / f"tracks.{fmt}"
        _export(data, fmt, target)
        frame = read(target).set_index("track_id", drop=False)
        assert len(frame) == len(expected) == 3
        for track in expected:
            row = frame.loc[track["track_id"]]
            for name in SCALARS:
                assert _same(row[name], track[name]), (fmt, name, row[name], track[name])
            for name in ("artists", "featured_artists", "genres"):
                assert list(row[name]) == track[name], (fmt, name)
            moods = track["moods"] or {}
            for mood, value in moods.items():
                assert _same(row[f"moods_{mood}"], value), (fmt, mood)
            learned = track["music_tags"] or {}
            assert not learned or len(learned["msd"]) == len(learned["mtt"]) == 50
            for model, tags in learned.items():  # one column per learned tag: music_tags_msd.rock ...
                for tag, value in tags.items():
                    assert _same(row[f"music_tags_{model}.{tag}"], value), (fmt, model, tag)
        first = frame[frame["title"] == "First"].iloc[0]
        assert list(first["artists"]) == ["Ann", "Bob"] and list(first["genres"]) == ["Rock", "Jazz"]


def test_csv_round_trip_joins_lists(exported_library, tmp_path):
    data, expected = exported_library
    target = tmp_path / "tracks.csv"
    _export(data, "csv", target)
    frame = pd.read_csv(target, keep_default_na=False, na_values=[""]).set_index("track_id", drop=False)
    for track in expected:
        row = frame.loc[track["track_id"]]
        for name in SCALARS:
            assert _same(row[name], track[name]), (name, row[name], track[name])
        for name in ("artists", "genres"):
            joined = LIST_SEPARATOR.join(track[name])
            assert (row[name] if isinstance(row[name], str) else "") == joined
    assert frame[frame["title"] == "Second, with a comma"].iloc[0]["featured_artists"] == "Cy"


def test_export_to_stdout_and_without_catalog(exported_library, tmp_path, capsysbinary):
    data, expected = exported_library
    assert main(["export", "--data-dir", str(data), "--format", "jsonl"]) == 0
    lines = capsysbinary.readouterr().out.decode("utf-8").splitlines()
    assert [json.loads(line)["path"] for line in lines] == [t["path"] for t in expected]
    assert main(["export", "--data-dir", str(tmp_path / "empty"), "--format", "csv"]) == 2
    assert b"no catalog yet" in capsysbinary.readouterr().err
