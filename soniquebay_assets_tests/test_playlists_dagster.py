"""The `playlists` asset (M3U8 files, metadata, the entries check) and its sensor (a run only when a saved playlist
was made from an older catalog state), on SQLite and PostgreSQL catalogs of real audio files."""

from __future__ import annotations

from pathlib import Path

import m3u8 as m3u8_reader
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from soniquebay_assets.catalog import db
from soniquebay_assets.catalog import playlists as repo
from soniquebay_assets.dagster_defs.assets.playlists import playlists, playlists_sensor
from soniquebay_assets.dagster_defs.definitions import defs
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.domain.playlists import PlaylistFilters, PlaylistRequest
from soniquebay_assets.pipeline import playlists as pipeline
from soniquebay_assets.queues import QUEUE_BY_GROUP, QUEUE_TAG
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.playlists_support import clean_subsonic_env
from soniquebay_assets_tests.scan_helpers import scan_catalog

pytestmark = pytest.mark.both_backends


@pytest.fixture()
def library(data_dir, tmp_path, make_audio, monkeypatch):
    """Nine tagged songs by three artists, cataloged; two saved playlists (one of two clusters would need vectors,
    so: a filter playlist and a second one kept to rock)."""
    clean_subsonic_env(monkeypatch)
    root = tmp_path / "Music"
    for i in range(9):
        make_audio(root / f"Artist {i % 3}" / f"0{i}.flac", seconds=2.0, title=f"Song {i}", artist=f"Artist {i % 3}",
                   album=f"Album {i % 3}", genre="Rock" if i < 6 else "Jazz")
    url = DataDir(data_dir).catalog_url
    with db.connection(url) as conn:
        scan_catalog(conn, [root])
        pipeline.save_playlist(conn, "Everything", PlaylistRequest("filter", length=6, seed=1))
        pipeline.save_playlist(conn, "Rock", PlaylistRequest("filter", length=4, filters=PlaylistFilters(
            genres=("rock",))))
    return data_dir, url, root


def _materialize(instance: DagsterInstance, data_dir: Path, only_due: bool = False):
    return materialize([playlists], instance=instance,
                       resources={"catalog": CatalogResource(data_dir_path=str(data_dir))},
                       run_config={"ops": {"playlists": {"config": {"only_due": only_due}}},
                                   "loggers": {"console": {"config": {"log_level": "ERROR"}}}})


def _metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: getattr(v, "value", v) for k, v in event.event_specific_data.materialization.metadata.items()}


def test_asset_is_registered_in_its_group_and_routed_to_its_queue():
    node = defs.resolve_asset_graph().get(AssetKey("playlists"))
    assert node.group_name == "playlists" and node.partitions_def is None
    assert AssetKey("track_embeddings") in node.parent_keys
    assert playlists.op.tags[QUEUE_TAG] == QUEUE_BY_GROUP["playlists"] == "worker_playlists"
    assert playlists_sensor.default_status.value == "RUNNING"
    assert playlists_sensor.name in {sensor.name for sensor in defs.sensors}


@pytest.mark.slow  # several in-process runs
def test_materialization_writes_every_playlist_and_checks_its_entries(library):
    data_dir, url, root = library
    with instance_for_test() as instance:
        result = _materialize(instance, data_dir)
        assert result.success
        metadata = _metadata(result)
        assert (metadata["playlists"], metadata["files"], metadata["entries"], metadata["entries_changed"]) == (
            2, 2, 10, 10)
        assert metadata["minutes"] == pytest.approx(10 * 2 / 60, abs=0.1)
        assert "| Everything | 6 |" in metadata["per_playlist"] and metadata["result_per_target"] == {}
        (check,) = result.get_asset_check_evaluations()
        assert check.passed and check.metadata["entries_checked"].value == 10
        folder = DataDir(data_dir).playlists
        for name, count in (("Everything", 6), ("Rock", 4)):
            parsed = m3u8_reader.load(str(folder / f"{name}.m3u8"))
            assert len(parsed.segments) == count and all(Path(s.uri).is_file() for s in parsed.segments)
        # unchanged catalog: the same entries, nothing counted as changed
        assert _metadata(_materialize(instance, data_dir))["entries_changed"] == 0

        # what the HTTP API serves: saved playlists as typed entries, and an M3U8 download
        with db.connection(url) as conn:
            ((definition, parts),) = pipeline.saved_playlists(conn, "Rock")
        assert definition.kind == "filter" and [len(p.entries) for p in parts] == [4]
        assert all(e.reason == "passes the filters" and e.path.startswith(str(root)) for e in parts[0].entries)
        download = pipeline.m3u8_text(parts[0], prefix=f"{root}=/music").splitlines()
        assert download[:2] == ["#EXTM3U", "#PLAYLIST:Rock"]
        assert [line for line in download if not line.startswith("#")] == [
            "/music/" + str(Path(e.path).relative_to(root)) for e in parts[0].entries]

        # a file deleted behind the catalog's back fails the check and names it
        with db.connection(url) as conn:
            saved = repo.get_definition(conn, "Rock")
            gone = repo.stored_parts(conn, saved.playlist_id)[0].entries[0]["path"]
        Path(gone).unlink()
        (check,) = _materialize(instance, data_dir).get_asset_check_evaluations()
        assert not check.passed and check.metadata["missing_on_disk"].value >= 1
        assert gone in str(check.metadata["examples"].value)


@pytest.mark.slow  # several in-process runs
def test_sensor_asks_for_a_run_only_when_a_playlist_is_due(library):
    data_dir, url, _ = library
    resources = {"catalog": CatalogResource(data_dir_path=str(data_dir))}
    with instance_for_test() as instance:
        first = playlists_sensor(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(first, RunRequest)  # never made: due
        assert first.run_config["ops"]["playlists"]["config"]["only_due"] is True
        assert _materialize(instance, data_dir, only_due=True).success
        idle = playlists_sensor(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(idle, SkipReason) and "up to date" in idle.skip_message
        with db.connection(url) as conn, db.transaction(conn):  # a retag: the catalog moved
            conn.execute("UPDATE tracks SET title = 'Renamed', updated_at = '2999-01-01T00:00:00.000Z'"
                         " WHERE track_id = (SELECT MIN(track_id) FROM tracks)")
        assert isinstance(playlists_sensor(build_sensor_context(instance=instance, resources=resources)), RunRequest)
        # a due run makes only the due playlists: both here, since the catalog state is shared
        assert _metadata(_materialize(instance, data_dir, only_due=True))["playlists"] == 2
        assert _metadata(_materialize(instance, data_dir, only_due=True))["playlists"] == 0


@pytest.mark.slow  # an in-process run
def test_the_deferred_playlists_schedule_runs_the_waiting_pushes_without_shards(library):
    """Pushes that waited for a server are claimed by the kind's schedule as one run without partitions; with no
    server configured any more, the run settles them (nothing left to push)."""
    import time

    from soniquebay_assets.catalog import deferred
    from soniquebay_assets.dagster_defs.deferred_sensors import CLAIM_TAG, request_for_kind

    data_dir, url, _ = library
    with db.connection(url) as conn:
        saved = repo.get_definition(conn, "Rock")
        deferred.enqueue(conn, "playlists", "playlist", [(saved.playlist_id, "00")])
        (request,) = request_for_kind(conn, "playlists", now=time.time() + 1)
    assert "dagster/asset_partition_range_start" not in request.tags and request.tags[CLAIM_TAG]
    with instance_for_test() as instance:
        result = materialize([playlists], instance=instance, tags=request.tags,
                             resources={"catalog": CatalogResource(data_dir_path=str(data_dir))})
        assert result.success and _metadata(result)["playlists"] == 0  # a retry run re-makes nothing
    with db.connection(url) as conn:
        assert conn.execute("SELECT state FROM deferred_work WHERE kind = 'playlists'").fetchone()[0] == "done"
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("playlists")).partitions_def is None
    assert defs.resolve_job_def("deferred_playlists_job").partitions_def is None


def test_push_outcomes_and_server_song_ids_are_kept_per_server(library):
    _, url, _ = library
    with db.connection(url) as conn:
        saved = repo.get_definition(conn, "Rock")
        tracks = [r[0] for r in conn.execute("SELECT track_id FROM tracks ORDER BY track_id LIMIT 3")]
        repo.save_push(conn, saved.playlist_id, 0, "navidrome", remote_id="pl-1", status="deferred", pushed=0,
                       unmatched=[], message="did not answer")
        repo.save_push(conn, saved.playlist_id, 0, "navidrome", remote_id=None, status="partial", pushed=2,
                       unmatched=[{"track_id": tracks[2], "path": "/x", "reason": "not on the server"}], message="")
        (state,) = repo.push_states(conn, saved.playlist_id)
        assert (state.remote_id, state.status, state.pushed, state.unmatched[0]["reason"]) == (
            "pl-1", "partial", 2, "not on the server")  # an unknown id keeps the one the server gave before
        repo.save_song_ids(conn, "navidrome", [(tracks[0], "s0", "path"), (tracks[1], "s1", "tags"),
                                               (10**9, "gone", "path")])  # a track deleted meanwhile: skipped
        repo.save_song_ids(conn, "gonic", [(tracks[0], "g0", "path")])
        assert repo.cached_song_ids(conn, "navidrome", tracks) == {tracks[0]: "s0", tracks[1]: "s1"}
        repo.forget_song_ids(conn, "navidrome", [tracks[0]])
        assert repo.cached_song_ids(conn, "navidrome", tracks) == {tracks[1]: "s1"}
        assert repo.cached_song_ids(conn, "gonic", tracks) == {tracks[0]: "g0"}
