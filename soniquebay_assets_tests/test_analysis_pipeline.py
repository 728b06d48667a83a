"""Enrichment end to end: the enriched_tracks asset on a small real library, re-run rules, CLI and bench."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from dagster import instance_for_test

from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.domain.analysis import synth
from soniquebay_assets.pipeline import enrich
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.scan_helpers import (
    SCAN_GROUPS,
    errors_by_path,
    materialize_scan,
    metadata_of,
    tempo_and_key,
    tracks_by_title,
)

pytestmark = pytest.mark.both_backends

GROUPS = SCAN_GROUPS | {"metadata"}


@pytest.fixture()
def instance():
    with instance_for_test() as inst:
        yield inst


def _tag_vorbis(path: Path, **tags) -> None:
    import mutagen

    audio = mutagen.File(str(path))
    if audio.tags is None:
        audio.add_tags()
    for key, value in tags.items():
        audio.tags[key.upper()] = value if isinstance(value, list) else [str(value)]
    audio.save()


@pytest.fixture()
def library(tmp_path) -> Path:
    from mutagen import id3

    root = tmp_path / "music"
    # one album folder = one shard: a one-partition run keeps this test quick
    a = b = root / "Artist A" / "Groove"
    a.mkdir(parents=True)
    sf.write(str(a / "01 song.flac"), synth.song(128, 9, "minor", 25, sr=44100), 44100)
    _tag_vorbis(a / "01 song.flac", title="Song", artist="Artist A", album="Groove", tracknumber="1",
                genre=["Hip-Hop; electronica", "hip hop"], bpm="64")
    sf.write(str(a / "02 drums.ogg"), synth.drum_pattern(100, 25, 44100, "rock"), 44100)
    _tag_vorbis(a / "02 drums.ogg", title="Drums", artist="Artist A", album="Groove", tracknumber="2",
                genre="drum and bass")
    sf.write(str(b / "01 silence.wav"), np.zeros(44100 * 6, dtype=np.float32), 44100)
    sf.write(str(b / "02 short.wav"), synth.song(128, 0, "major", 1.0), 22050)
    garbage = b / "03 garbage.mp3"
    garbage.write_bytes(os.urandom(4000))
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text=["Garbage"]))
    tags.save(str(garbage))
    return root


def _library_shards(library: Path) -> list[str]:
    """Only the shards holding the test files (as the walker assigns them): a run over every shard costs minutes
    on a busy machine."""
    from soniquebay_assets.library.walker import walk_library

    return sorted({f.shard for f in walk_library([library]).files})


def _by_file(data_dir: Path) -> dict[str, dict]:
    return {Path(t["path"]).name: t for t in tracks_by_title(data_dir).values()}


@pytest.mark.slow
def test_enriched_tracks_asset_on_a_small_library(instance, library, data_dir):
    result = materialize_scan(instance, library, data_dir, shards=_library_shards(library), groups=GROUPS)
    assert result.success  # bad files never fail the partition
    meta = metadata_of(result, "enriched_tracks")
    assert (meta["analyzed"], meta["ok"], meta["partial"], meta["failed"], meta["skipped"]) == (5, 2, 2, 1, 0)
    assert "120-129" in meta["bpm_histogram"] and "90-99" in meta["bpm_histogram"]
    assert "A minor" in meta["key_table"] and "8A" in meta["key_table"]
    assert meta["mean_seconds_per_track"] > 0

    tracks = _by_file(data_dir)
    song = tracks["01 song.flac"]
    assert abs(song["bpm"] - 128) < 2 and song["bpm_source"] == "analysis"  # confident analysis beats the tag
    assert song["bpm_tag"] == 64
    assert (song["key"], song["mode"], song["camelot"]) == ("A", "minor", "8A")
    assert song["analysis_version"] == enrich.ANALYSIS_VERSION
    assert set(song["moods"]) == {"happy", "sad", "aggressive", "relaxed", "party"}
    assert all(0 <= v <= 1 for v in song["moods"].values())
    from soniquebay_assets.domain.analysis import musicnn

    # the learned tags: every label of both taggers, as probabilities
    assert list(song["music_tags"]["msd"]) == list(musicnn.MSD_LABELS)
    assert list(song["music_tags"]["mtt"]) == list(musicnn.MTT_LABELS)
    assert all(0 <= p <= 1 for model in ("msd", "mtt") for p in song["music_tags"][model].values())
    for field in ("bpm_confidence", "loudness_lufs", "replaygain_track_gain_db", "energy", "danceability",
                  "replaygain_track_peak", "true_peak_dbtp", "loudness_range_lu", "replaygain_album_gain_db"):
        assert song[field] is not None, field
    assert meta["albums_gated"] >= 1 and meta["parts_recomputed"]
    assert song["genres_normalized"] == ["Hip Hop", "Electronic"]
    assert tracks["02 drums.ogg"]["genres_normalized"] == ["Drum & Bass"]
    assert abs(tracks["02 drums.ogg"]["bpm"] - 100) < 2

    silence = tracks["01 silence.wav"]
    assert silence["analysis_status"] == "partial" and silence["bpm"] is None and silence["moods"] is None
    assert silence["music_tags"] is None
    assert tracks["02 short.wav"]["bpm"] is None

    errors = {Path(p).name: e for p, e in errors_by_path(data_dir).items() if e["stage"] == "enrich"}
    assert errors["01 silence.wav"]["severity"] == "warning" and errors["01 silence.wav"]["reason"] == "silent"
    assert errors["02 short.wav"]["severity"] == "warning"
    garbage_error = errors.get("03 garbage.mp3")
    if "03 garbage.mp3" in tracks:  # the catalog may keep the file as a track; then enrich records the failure
        assert tracks["03 garbage.mp3"]["analysis_status"] == "error" and garbage_error["severity"] == "error"

    # the exposure rule: a low-confidence analysis yields to the tag, and the listing says so
    conn = open_catalog(DataDir(data_dir).catalog_url)
    try:
        song_id = song["track_id"]
        conn.execute("UPDATE track_analysis SET bpm_confidence = 0.05, key_confidence = 0.05 WHERE track_id = ?",
                     (song_id,))
        conn.execute("UPDATE tracks SET key_tag = 'Am' WHERE track_id = ?", (song_id,))
    finally:
        conn.close()
    song = _by_file(data_dir)["01 song.flac"]
    assert (song["bpm"], song["bpm_source"], song["bpm_analyzed"]) == (64, "tag", pytest.approx(128, abs=2))
    assert (song["key"], song["key_source"], song["mode"], song["camelot"]) == ("Am", "tag", None, None)

    # a re-run analyses nothing: every track is up to date
    again = metadata_of(materialize_scan(instance, library, data_dir, shards=_library_shards(library),
                                         groups={"metadata"}), "enriched_tracks")
    assert again["analyzed"] == 0 and again["skipped"] == 5


def _shards(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT shard FROM tracks")]


@pytest.mark.slow
def test_rerun_rules_audio_change_version_bump_and_retry(instance, library, data_dir, monkeypatch):
    materialize_scan(instance, library, data_dir, shards=_library_shards(library), groups=SCAN_GROUPS)
    conn = open_catalog(DataDir(data_dir).catalog_url)
    try:
        shards = _shards(conn)
        first = enrich.enrich_shards(conn, shards, data_dir=data_dir, workers=2)  # 5 tracks: the process pool
        assert first.analyzed == 5 and first.failed == 1
        assert enrich.enrich_shards(conn, shards, data_dir=data_dir).analyzed == 0
        assert (data_dir / "cache" / "numba").is_dir()

        # audio changed since the analysis: only that track again
        conn.execute("UPDATE tracks SET audio_changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                     "WHERE path LIKE '%drums.ogg'")
        changed = enrich.enrich_shards(conn, shards, data_dir=data_dir, workers=1)
        assert changed.analyzed == 1 and changed.skipped == 4

        # a version bump (here tempo's) is picked up by the next run, which recomputes only that part; a deferred
        # run (outdated_ids: what it claimed) re-measures only the tracks it was given
        from soniquebay_assets.catalog import analysis as analysis_repo
        from soniquebay_assets.domain.analysis import analyze

        monkeypatch.setitem(analyze.PART_VERSIONS, "tempo", enrich.ANALYSIS_VERSION + 1)
        monkeypatch.setattr(enrich, "ANALYSIS_VERSION", enrich.ANALYSIS_VERSION + 1)
        assert analysis_repo.outdated_count(conn, shards, enrich.ANALYSIS_VERSION) == 5
        ids = sorted(r[0] for r in conn.execute("SELECT track_id FROM track_analysis WHERE status = 'ok'"))
        one = enrich.enrich_shards(conn, shards, data_dir=data_dir, workers=1, outdated_ids=[ids[0]])
        assert one.analyzed == 1 and one.outdated_version == 4 and one.parts_recomputed == {"tempo": 1}
        rest = enrich.enrich_shards(conn, shards, data_dir=data_dir, workers=1)
        assert rest.analyzed == 4
        # tempo alone (the moods come from the learned tags); the failed file (nothing stored to keep) is tried once
        # more, whole
        assert rest.parts_recomputed == {"key": 1, "loudness": 1, "moods": 1, "tags": 1, "tempo": 4}
        versions = {r[0] for r in conn.execute("SELECT analysis_version FROM track_analysis")}
        assert versions == {enrich.ANALYSIS_VERSION} and rest.outdated_version == 0
        assert enrich.enrich_shards(conn, shards, data_dir=data_dir, workers=1).analyzed == 0  # once only

        # failed tracks stay failed (no retry storm) unless asked
        assert enrich.enrich_shards(conn, shards, data_dir=data_dir, workers=1).analyzed == 0
        retried = enrich.enrich_shards(conn, shards, data_dir=data_dir, workers=1, retry_errors=True)
        assert retried.analyzed == retried.failed == 1
        # deleting a track cascades to its analysis
        conn.execute("DELETE FROM tracks WHERE path LIKE '%song.flac'")
        assert conn.execute("SELECT COUNT(*) FROM track_analysis").fetchone()[0] == 4
    finally:
        conn.close()


@pytest.mark.slow
def test_older_version_tracks_are_queued_behind_new_files_and_re_measured_without_asking(instance, library,
                                                                                        data_dir):
    """A catalog analysed before the whole-track loudness: the enrichment schedule's tick queues its tracks at low
    priority, a new file is claimed first, and the deferred run re-measures only loudness and the moods made from
    it (and the learned tags, newer than version 7): the stored tempo and key stay the same to the byte."""
    from dagster import materialize

    from soniquebay_assets.catalog import deferred
    from soniquebay_assets.dagster_defs import deferred_sensors as ds
    from soniquebay_assets.dagster_defs.assets.enrich import enriched_tracks
    from soniquebay_assets.dagster_defs.jobs import QUIET_CONSOLE
    from soniquebay_assets.dagster_defs.resources import CatalogResource

    def deferred_run(request) -> dict:
        result = materialize([enriched_tracks], instance=instance, tags=request.tags, run_config=QUIET_CONSOLE,
                             resources={"catalog": CatalogResource(data_dir_path=str(data_dir))})
        return metadata_of(result, "enriched_tracks")

    materialize_scan(instance, library, data_dir, shards=_library_shards(library), groups=GROUPS)
    conn = open_catalog(DataDir(data_dir).catalog_url)
    try:
        conn.execute("UPDATE deferred_work SET state = 'done'")  # the platform drained what the scan queued
        rows = {Path(r[1]).name: (r[0], r[2]) for r in conn.execute("SELECT track_id, path, shard FROM tracks")}
        new_file, shard = rows["01 song.flac"]
        older = sorted(rows[name][0] for name in ("02 drums.ogg", "01 silence.wav", "02 short.wav"))
        measured = dict(conn.execute("SELECT track_id, loudness_lufs FROM track_analysis").fetchall())
        kept = tempo_and_key(conn, older)
        conn.execute("UPDATE track_analysis SET analysis_version = 7, loudness_histogram = NULL, "
                     f"loudness_lufs = 99.0 WHERE track_id IN ({','.join(map(str, older))})")
        conn.execute("DELETE FROM track_analysis WHERE track_id = ?", (new_file,))
        deferred.enqueue(conn, "enrichment", "track", [(new_file, shard)])  # a new file: normal priority

        assert ds.queue_backlog(conn, "enrichment") == 3
        assert ds.queue_backlog(conn, "enrichment") == 0  # queued once: open items are not queued again
        assert ds.queue_backlog(conn, "vectors") == 0  # the other kinds have no backlog
        [first] = ds.request_for_kind(conn, "enrichment", max_items=1)
        assert set(deferred.claimed_entities(conn, first.tags[ds.CLAIM_TAG], "enrichment")) == {("track", new_file)}
        meta = deferred_run(first)
        assert (meta["analyzed"], meta["outdated_version"]) == (1, 3)  # the new file; the re-measures wait
        ds.settle_claim(conn, first.tags, success=True)

        [second] = ds.request_for_kind(conn, "enrichment")
        meta = deferred_run(second)
        assert (meta["analyzed"], meta["outdated_version"]) == (3, 0)
        assert meta["parts_recomputed"] == "| part | tracks |\n|---|---:|\n| loudness | 3 |\n| moods | 3 |\n| tags | 3 |"
        assert tempo_and_key(conn, older) == kept
        again = dict(conn.execute("SELECT track_id, loudness_lufs FROM track_analysis").fetchall())
        assert {t: again[t] for t in older} == {t: measured[t] for t in older}  # the same code, the same result
        assert conn.execute("SELECT COUNT(*) FROM track_analysis WHERE analysis_version < ?",
                            (enrich.ANALYSIS_VERSION,)).fetchone()[0] == 0
        assert ds.settle_claim(conn, second.tags, success=True) == {"done": 3}
        assert ds.queue_backlog(conn, "enrichment") == 0
    finally:
        conn.close()


def _run_cli(argv: list[str], capsys) -> dict:
    from soniquebay_assets.cli.main import main

    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_commands_print_one_json_object(tmp_path, capsys, data_dir):
    truth_tempo, truth_key = tmp_path / "tempo.tsv", tmp_path / "key.tsv"
    lines_t, lines_k = ["path\tbpm"], []
    for i, (bpm, tonic, mode) in enumerate([(90, 2, "major"), (140, 9, "minor")]):
        name = f"t{i}.wav"
        sf.write(str(tmp_path / name), synth.song(bpm, tonic, mode, 15), 22050)
        lines_t.append(f"{name}\t{bpm}")
        lines_k.append(f"{tmp_path / name}\t{synth.PITCH_CLASSES[tonic]} {mode}")
    truth_tempo.write_text("\n".join(lines_t) + "\n")
    truth_key.write_text("\n".join(lines_k) + "\n")
    tempo = _run_cli(["eval", "tempo", "--truth", str(truth_tempo), "--verbose", "--workers", "1"], capsys)
    assert tempo["metric"] == "tempo" and tempo["n"] == 2 and tempo["accuracy1"] == 1.0
    assert len(tempo["rows"]) == 2 and tempo["rows"][0]["accuracy1"] is True
    key = _run_cli(["eval", "key", "--truth", str(truth_key), "--workers", "1"], capsys)
    assert key["metric"] == "key" and key["exact"] == 1.0 and key["mirex_weighted"] == 1.0 and "rows" not in key


@pytest.mark.slow
def test_bench_analyze_prints_one_json_object(capsys, data_dir):
    report = _run_cli(["bench", "analyze", "--tracks", "1", "--minutes", "0.5"], capsys)
    for field in ("realtime_factor_per_core", "seconds_per_4min_track", "peak_rss_mb", "audio_seconds"):
        assert report[field] > 0, field
    assert report["results"][0]["status"] == "ok"


def test_results_for_a_track_deleted_meanwhile_are_dropped_not_fatal(tmp_path):
    from soniquebay_assets.catalog import analysis as repo
    from soniquebay_assets.catalog.db import transaction

    conn = open_catalog(tmp_path / "catalog.db")
    try:
        with transaction(conn):  # a concurrent rescan deleted track 999 while it was being analysed
            repo.save_analyses(conn, [(999, 1, {"status": "ok", "bpm": 120.0})])
            repo.save_mood_tags(conn, {999: ["happy"]})
        assert conn.execute("SELECT COUNT(*) FROM track_analysis").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM track_mood_tags").fetchone()[0] == 0
    finally:
        conn.close()
