"""The `soniquebay` command as a user runs it: a real subprocess, a real library, JSON out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TRACK_FIELDS = {"track_id", "path", "title", "artists", "album", "album_id", "album_artist", "track_number",
                "disc_number", "year", "genres", "duration_s", "format", "musicbrainz_recording_id",
                "musicbrainz_release_id", "compilation", "quality_score", "title_from_fallback"}
SCAN_FIELDS = {"files_seen", "tracks", "albums", "artists", "errors", "skipped_unchanged", "deleted", "seconds"}


def soniquebay(*args: str, env_extra: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-m", "soniquebay_assets.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture()
def library(tmp_path: Path, make_audio) -> Path:
    root = tmp_path / "music"
    make_audio(root / "Alpha/One/01 - First.mp3", title="First", artist=["Alpha", "Beta"], album="One",
               albumartist="Alpha", tracknumber="1/2", date="1999-04-01", genre="Rock/Pop")
    make_audio(root / "Alpha/One/02 - Second.flac", title="Second", artist="Alpha", album="One",
               albumartist="Alpha", tracknumber="2/2", date="1999", musicbrainz_albumid="11111111-2222-4333-8444-555555555555")
    (root / "Alpha/One/broken.mp3").write_text("not audio")
    return root


@pytest.mark.slow
def test_scan_json_tracks_and_errors(library, tmp_path):
    data = tmp_path / "data"
    scan = soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog", "--json")
    lines = [line for line in scan.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "scan --json prints exactly one JSON object"
    summary = json.loads(lines[0])
    assert SCAN_FIELDS <= summary.keys()
    assert (summary["files_seen"], summary["tracks"], summary["errors"]) == (3, 2, 1)
    from soniquebay_assets.catalog.db import open_catalog

    conn = open_catalog(data / "catalog.db")
    history = conn.execute("SELECT origin, finished_at, stats FROM scans").fetchall()
    conn.close()
    assert len(history) == 1 and history[0][0] == "cli" and history[0][1]
    assert json.loads(history[0][2])["files_seen"] == 3  # each CLI scan is kept in the scan history

    tracks = [json.loads(line) for line in soniquebay("tracks", "--json", "--data-dir", str(data)).stdout.splitlines()]
    assert len(tracks) == 2 and all(TRACK_FIELDS <= t.keys() for t in tracks)
    first = next(t for t in tracks if t["title"] == "First")
    assert first["artists"] == ["Alpha", "Beta"] and first["genres"] == ["Rock", "Pop"]
    assert first["year"] == 1999 and first["track_number"] == 1 and Path(first["path"]).is_absolute()
    assert first["album_id"] == next(t for t in tracks if t["title"] == "Second")["album_id"]

    errors = [json.loads(line) for line in soniquebay("errors", "--json", "--data-dir", str(data)).stdout.splitlines()]
    assert [(Path(e["path"]).name, e["stage"], e["reason"]) for e in errors] == [
        ("broken.mp3", "extract", "not an audio file")]

    again = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog",
                                  "--json").stdout)
    assert again["skipped_unchanged"] == 3 and again["run_id"] is None  # nothing changed: no tag read, no run

    (library / "Alpha/One/02 - Second.flac").unlink()
    third = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog",
                                  "--json").stdout)
    assert third["deleted"] == 1 and third["tracks"] == 1


@pytest.mark.slow
def test_data_dir_from_environment_and_dagster_home(library, tmp_path):
    data = tmp_path / "env-data"
    soniquebay("scan", str(library), "--stages", "catalog", "--json", env_extra={"SONIQUEBAY_DATA_DIR": str(data)})
    assert (data / "catalog.db").is_file()
    assert (data / "dagster_home" / "dagster.yaml").is_file()
    runs = list((data / "dagster_home" / "history").rglob("*.db"))
    assert runs, "the CLI run is recorded in the data dir's Dagster home, so `soniquebay dev` shows it"


def test_clear_errors_for_bad_arguments(tmp_path):
    missing = soniquebay("scan", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d"), check=False)
    assert missing.returncode == 2 and "not a folder" in missing.stderr
    stage = soniquebay("scan", str(tmp_path), "--data-dir", str(tmp_path / "d"), "--stages", "bogus", check=False)
    assert stage.returncode == 2 and "unknown stage" in stage.stderr
    empty = soniquebay("tracks", "--json", "--data-dir", str(tmp_path / "empty"), check=False)
    assert empty.returncode == 2 and "soniquebay scan" in empty.stderr


def _materializations(home: Path, asset: str, shard: str) -> list:
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        found = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[shard]), limit=10)
        return [(r.run_id, r.asset_materialization.metadata) for r in found.records]


@pytest.mark.slow
def test_catalog_scans_are_recorded_per_shard_without_a_run_unless_asked(tmp_path, make_audio):
    from dagster import AssetCheckKey, AssetKey, DagsterInstance

    from soniquebay_assets.dagster_defs.runless import RECORDED_BY
    from soniquebay_assets.library.walker import walk_library

    library, data = tmp_path / "music", tmp_path / "data"
    make_audio(library / "Solo/One/01.flac", seconds=0.3, title="One", artist="Solo", album="One")
    cold = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog",
                                 "--json").stdout)
    assert cold["recorded_without_run"] is True and cold["run_id"] is None and cold["tracks"] == 1
    (shard,) = {f.shard for f in walk_library([library]).files}
    for asset in ("file_inventory", "raw_metadata", "catalog_entities"):
        (run_id, metadata), = _materializations(data / "dagster_home", asset, shard)
        assert run_id == "" and metadata["recorded_by"].value == RECORDED_BY
        assert metadata["shard"].value == shard and metadata["shard_files"].value == 1
    assert _materializations(data / "dagster_home", "catalog_entities", "00" if shard != "00" else "01") == []

    for n in range(12):  # albums land in shards by hash: several new shards at once
        make_audio(library / f"Band {n}/Album {n}/01.flac", seconds=0.3, title=f"T{n}", artist=f"Band {n}",
                   album=f"Album {n}")
    changed = {f.shard for f in walk_library([library]).files} - {shard}
    assert len(changed) > 4
    many = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog",
                                 "--json").stdout)
    assert many["recorded_without_run"] is True and many["tracks"] == 13 and many["new"] == 12
    assert many["stage_metadata"]["raw_metadata"]["files_read"] == 12
    with DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        assert instance.get_runs() == []
        for asset in ("file_inventory", "raw_metadata", "catalog_entities"):  # one event per changed shard
            assert instance.get_materialized_partitions(AssetKey(asset)) == changed | {shard}
        key = AssetCheckKey(AssetKey("catalog_entities"), "no_duplicate_paths")
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
        assert len(history) == 2 and all(r.evaluation.passed for r in history)  # one per scan, not per shard
    for some in changed:
        (run_id, metadata), = _materializations(data / "dagster_home", "raw_metadata", some)
        assert run_id == "" and metadata["files_read"].value == 12

    make_audio(library / "Late/Album/01.flac", seconds=0.3, title="Late", artist="Late", album="Album")
    as_run = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog",
                                   "--run", "--json").stdout)
    assert as_run["recorded_without_run"] is False and as_run["run_id"] and as_run["tracks"] == 14
    with DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        (run,) = instance.get_runs()
        assert run.run_id == as_run["run_id"] and run.is_success


@pytest.mark.slow
def test_a_scan_recorded_without_a_run_never_loads_dagster_in_the_scanning_process(tmp_path, make_audio):
    """The scan's runs live in the Dagster layer, yet a catalog scan's own process imports no Dagster: only its
    recorder child does (Dagster's imports cost about a second of CPU that the stages use instead)."""
    library, data = tmp_path / "music", tmp_path / "data"
    make_audio(library / "Solo/One/01.flac", seconds=0.3, title="One", artist="Solo", album="One")
    probe = ("import json, sys\n"
             "from soniquebay_assets.cli.main import main\n"
             f"code = main(['scan', {str(library)!r}, '--data-dir', {str(data)!r}, '--stages', 'catalog', '--json'])\n"
             "print(json.dumps({'code': code, 'dagster': sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')}))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary, probe_out = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert summary["recorded_without_run"] is True and summary["tracks"] == 1
    assert probe_out == {"code": 0, "dagster": []}


@pytest.mark.slow
def test_direct_work_that_fails_is_redone_by_a_run_that_records_it(tmp_path, make_audio, monkeypatch, capsys):
    from dagster import DagsterInstance

    from soniquebay_assets.cli.main import main
    from soniquebay_assets.dagster_defs import metadata, scan_runs

    library, data = tmp_path / "music", tmp_path / "data"
    make_audio(library / "Solo/One/01.flac", seconds=0.3, title="One", artist="Solo", album="One")
    make_audio(library / "Solo/One/02.flac", seconds=0.3, title="Two", artist="Solo", album="One")
    real_shard_metadata, calls = metadata.shard_metadata, []

    def fails_to_record(recorder, stats, shards, data_root):
        # after every stage wrote its rows: the run must redo nothing twice and lose nothing
        raise RuntimeError("recording the scan in Dagster failed: OSError: disk full while recording")

    def counted(catalog, shards):
        calls.append(list(shards))
        return real_shard_metadata(catalog, shards)

    monkeypatch.setattr(scan_runs.RecorderProcess, "record", fails_to_record)
    monkeypatch.setattr(metadata, "shard_metadata", counted)  # what the run records, here in this process
    assert main(["scan", str(library), "--data-dir", str(data), "--stages", "catalog", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "disk full while recording" in captured.err and "Dagster run" in captured.err
    assert summary["recorded_without_run"] is False and summary["run_id"] and not summary["run_failed"]
    assert summary["tracks"] == 2 and summary["albums"] == 1 and summary["errors"] == 0
    with DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        (run,) = instance.get_runs()
        assert run.run_id == summary["run_id"] and run.is_success
    assert calls


@pytest.mark.slow
def test_the_recorder_process_reports_what_it_could_not_record_and_stops(tmp_path, monkeypatch):
    from soniquebay_assets.cli.common import use_dagster_home
    from soniquebay_assets.dagster_defs.scan_runs import RecorderProcess
    from soniquebay_assets.settings import DataDir

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # restored after the test; use_dagster_home sets it
    monkeypatch.setenv("SONIQUEBAY_DATA_DIR", str(tmp_path))
    data = DataDir(tmp_path / "data").ensure()
    use_dagster_home(data)
    recorder = RecorderProcess()
    try:
        with pytest.raises(RuntimeError, match="recording the scan in Dagster failed: AttributeError"):
            recorder.record({"insert": "not the catalog stage's stats"}, ["00"], data.root)
    finally:
        recorder.stop()
    assert not recorder._process.is_alive()

    idle = RecorderProcess()  # a scan that fails before recording: the child ends without recording anything
    idle.stop()
    assert not idle._process.is_alive() and idle._process.exitcode == 0


@pytest.mark.slow
def test_a_scan_re_measures_what_an_older_analysis_version_measured(library, tmp_path):
    """No file changed, but the catalog holds rows an older analysis version wrote: the next plain scan re-measures
    their outdated part (loudness) and keeps tempo and key to the byte."""
    from soniquebay_assets.catalog.db import open_catalog
    from soniquebay_assets.domain.analysis.analyze import ANALYSIS_VERSION
    from soniquebay_assets_tests.scan_helpers import tempo_and_key

    data = tmp_path / "data"
    soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog,enrich", "--json")
    conn = open_catalog(data / "catalog.db")
    kept = tempo_and_key(conn)
    older = conn.execute("UPDATE track_analysis SET analysis_version = 7, loudness_histogram = NULL, "
                         "loudness_lufs = 99.0 WHERE status <> 'error'").rowcount
    conn.close()
    assert older == 2

    again = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog,enrich",
                                  "--json").stdout)
    assert (again["shards_changed"], again["shards_remeasured"], again["skipped_unchanged"]) == (0, 1, 3)
    enriched = again["stage_metadata"]["enriched_tracks"]
    assert (enriched["analyzed"], enriched["outdated_version"]) == (2, 0)
    assert enriched["parts_recomputed"] == "| part | tracks |\n|---|---:|\n| loudness | 2 |\n| moods | 2 |\n| tags | 2 |"
    conn = open_catalog(data / "catalog.db")
    assert tempo_and_key(conn) == kept
    assert conn.execute("SELECT COUNT(*) FROM track_analysis WHERE analysis_version < ? OR loudness_lufs > 0",
                        (ANALYSIS_VERSION,)).fetchone()[0] == 0
    conn.close()
    plain = soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog,enrich")
    assert "Re-measured" not in plain.stdout  # once only


@pytest.mark.slow
def test_a_scan_after_an_interrupted_one_reports_what_it_finished(tmp_path, make_audio):
    """A scan killed after its inventory (and part of the tag reading) left files with no track: the next scan
    catalogs them and says so, instead of calling them unchanged."""
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.pipeline.scan import extract_shards, inventory_shards, plan_scan
    from soniquebay_assets.settings import DataDir

    library, data = tmp_path / "music", tmp_path / "data"
    for n in range(6):
        make_audio(library / f"Artist {n}/Album {n}/01 t.flac", title=f"t{n}", artist=f"Artist {n}", album=f"A{n}")
    with connection(DataDir(data).ensure().catalog_url) as conn:  # what the killed scan had done
        plan = plan_scan(conn, [library])
        inventory_shards(conn, plan.walk, plan.affected)
        read_before = extract_shards(conn, plan.affected[:1], workers=1).read
    assert read_before >= 1
    resumed = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog",
                                    "--json").stdout)
    assert (resumed["new"], resumed["resumed"], resumed["skipped_unchanged"]) == (0, 6, 0)
    assert (resumed["tags_read"], resumed["tracks_written"], resumed["tracks"]) == (6 - read_before, 6, 6)
    again = json.loads(soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog",
                                  "--json").stdout)
    assert (again["resumed"], again["skipped_unchanged"], again["tags_read"]) == (0, 6, 0)
