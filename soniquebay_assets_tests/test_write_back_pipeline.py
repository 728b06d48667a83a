"""Tag write-back through the catalog: the stage, the journal and undo, the next scan (same tracks, no
re-analysis), errors as records, covers, the CLI, and a writer killed with SIGKILL mid-write."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile as sf

from soniquebay_assets.catalog import analysis as analysis_repo
from soniquebay_assets.catalog import external, vectors
from soniquebay_assets.catalog import write_back as repo
from soniquebay_assets.catalog.db import connection, transaction
from soniquebay_assets.cli.main import main
from soniquebay_assets.domain.tags import read_tags
from soniquebay_assets.pipeline import enrich
from soniquebay_assets.pipeline.write_back import (
    WriteBackRequest,
    default_options,
    settle_pending,
    undo_write_back,
    write_back,
)
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.scan_helpers import scan_catalog, tempo_and_key
from soniquebay_assets_tests.test_write_back import dump_tags

# The stage through the catalog on a corpus library scanned and analysed once per module: the slow tier.
pytestmark = pytest.mark.slow

FIELDS = frozenset({"replaygain", "bpm", "key", "musicbrainz_ids"})
RELEASE = "3f3f2e6a-1d1c-4e4b-9a55-2a5e7d3a9b10"
RECORDING = "0a8e8d55-4b83-4f8a-9732-fbb5ded9f344"

SONGS = {  # library path -> corpus file (real songs, 20-40 s excerpts)
    "Jens Erler/Musix/01 Madeira Stew.flac": "converted/Jens Erler - Musix 4 XMoto (2008)/01 - Madeira Stew.flac",
    "Jens Erler/Musix/02 Legolodio.flac": "converted/Jens Erler - Musix 4 XMoto (2008)/02 - Legolodio.flac",
    "Lupus/Legacy/01 Uncertain Future.mp3":
        "converted/LupusMechanicus - Legacy Soundtrack (2020)/01 - Uncertain Future.mp3",
    "Immich/Calme été/l’été.opus": "clips/immich-ai/calm/calm_acoustic_1.opus",
    "Severn/Warzone/01 Track 1.mp3": "converted/Martin Severn - Warzone 2100 OST (1999)/01 - Track 1.mp3",  # no ids
}
TRIO = {k: SONGS[k] for k in ("Jens Erler/Musix/02 Legolodio.flac", "Lupus/Legacy/01 Uncertain Future.mp3",
                              "Immich/Calme été/l’été.opus")}


def _library(root: Path, corpus: Path, songs: dict[str, str] = SONGS) -> Path:
    for name, source in songs.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / source, target)
        target.chmod(0o644)
    return root


def _request(conn, groups=FIELDS, **kwargs) -> WriteBackRequest:
    return WriteBackRequest(default_options(groups), **kwargs)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, corpus_dir):
    """A real library scanned and analysed once; `fresh` puts files and catalog back before each test."""
    base = tmp_path_factory.mktemp("write_back")
    library = _library(base / "music", corpus_dir)
    data = DataDir(base / "data").ensure()
    with connection(data.catalog_url) as conn:
        shards = scan_catalog(conn, [library])
        enrich.enrich_shards(conn, shards, data_dir=data, workers=1)
    pristine = base / "pristine"
    shutil.copytree(library, pristine / "music", copy_function=shutil.copy2)
    shutil.copy2(data.catalog_path, pristine / "catalog.db")
    return base, library, data, pristine


@pytest.fixture()
def fresh(analysed):
    base, library, data, pristine = analysed
    shutil.rmtree(library)
    shutil.copytree(pristine / "music", library, copy_function=shutil.copy2)
    for suffix in ("-wal", "-shm"):
        Path(str(data.catalog_path) + suffix).unlink(missing_ok=True)
    shutil.copy2(pristine / "catalog.db", data.catalog_path)
    return library, data


def _digests(library: Path) -> dict[str, str]:
    return {str(p.relative_to(library)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(library.rglob("*")) if p.is_file()}


def _snapshot(conn) -> dict[int, tuple]:
    return {r[0]: tuple(r[1:]) for r in conn.execute(
        "SELECT t.track_id, t.file_id, t.path, t.audio_changed_at, ta.analyzed_at, ta.bpm, ta.key "
        "FROM tracks t LEFT JOIN track_analysis ta ON ta.track_id = t.track_id ORDER BY t.track_id")}


def _rescan(conn, library: Path, data: DataDir):
    shards = scan_catalog(conn, [library])
    return shards, enrich.enrich_shards(conn, shards, data_dir=data, workers=1)


# ---------------------------------------------------------------------------------------------- the next scan


@pytest.mark.corpus
@pytest.mark.both_backends
def test_written_files_rescan_as_changed_tags_of_the_same_tracks(tmp_path, corpus_dir, data_dir):
    library = _library(tmp_path / "music", corpus_dir, TRIO)
    data = DataDir(data_dir)
    originals = {p: dump_tags(p) for p in library.rglob("*.*")}
    with connection(data.catalog_url) as conn:
        shards = scan_catalog(conn, [library])
        enrich.enrich_shards(conn, shards, data_dir=data, workers=1)
        before = _snapshot(conn)
        inputs_before = {i.track_id: i.text for i in vectors.read_track_inputs(conn)}
        lupus = [t for t, (_, path, *_) in before.items() if "/Lupus/" in path]
        assert repo.track_ids_under(conn, [str(library / "Lupus")]) == lupus  # a folder selects what is inside
        assert repo.track_ids_under(conn, [str(library / "Lup")]) == []  # ... and not a sibling's prefix

        stats = write_back(conn, _request(conn))

        assert stats.files_written == 3 and stats.files_failed == 0 and stats.run_id is not None
        assert stats.fields_written["replaygain_track_gain"] == 3
        entries = repo.undoable_entries(conn, run_id=stats.run_id)
        assert len(entries) == 3 and all(e.state == "written" for e in entries)
        for path, size, fingerprint in conn.execute("SELECT f.path, f.size, t.fingerprint FROM files f "
                                                    "JOIN tracks t USING (file_id)"):
            assert size == os.path.getsize(path) and fingerprint is not None

        shards_again, enriched = _rescan(conn, library, data)
        after = _snapshot(conn)
        assert set(shards_again) == set(shards)  # the walk saw the files change ...
        assert enriched.analyzed == 0  # ... but no track was analysed again
        assert after == before  # same ids, same audio identity, same analysis
        assert {i.track_id: i.text for i in vectors.read_track_inputs(conn)} == inputs_before  # vectors stay
        read = conn.execute("SELECT t.replaygain_track_gain, ta.replaygain_track_gain_db FROM tracks t "
                            "JOIN track_analysis ta USING (track_id)").fetchall()
        assert all(tag == pytest.approx(measured, abs=0.006) for tag, measured in read)  # the new tags were read

        undone = undo_write_back(conn)
        assert undone.entries_restored == 3 and undone.files_failed == 0
        assert {p: dump_tags(p) for p in library.rglob("*.*")} == originals
        _, enriched = _rescan(conn, library, data)
        assert enriched.analyzed == 0 and _snapshot(conn) == before
        assert undo_write_back(conn).entries_restored == 0  # nothing left to undo


# ---------------------------------------------------------------------------------------------- CLI, dry run


@pytest.mark.corpus
def test_dry_run_prints_the_changes_and_writes_nothing(fresh, capsys):
    library, data = fresh
    before = _digests(library)
    code = main(["write-tags", "--data-dir", str(data.root), "--replaygain", "--bpm", "--key", "--dry-run", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["dry_run"] and report["run_id"] is None
    assert report["files_written"] == len(report["files"]) == 5
    first = report["files"][0]
    assert first["status"] == "would_write" and any(c["field"] == "replaygain_track_gain" for c in first["changes"])
    assert _digests(library) == before
    with connection(data.catalog_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tag_write_runs").fetchone()[0] == 0
    main(["write-tags", "--data-dir", str(data.root), "--bpm", "--dry-run", str(library / "Lupus")])
    lines = capsys.readouterr().out.splitlines()
    assert all("Lupus" in line for line in lines)


@pytest.mark.corpus
def test_bad_arguments_exit_2_with_what_to_do(fresh, tmp_path, capsys):
    library, data = fresh
    base = ["write-tags", "--data-dir", str(data.root)]
    assert main(base) == 2
    assert "nothing is written by default" in capsys.readouterr().err
    assert main([*base, "--bpm", str(tmp_path / "elsewhere")]) == 2
    assert "outside the library roots" in capsys.readouterr().err
    assert main([*base, "--bpm", "--album", "99999"]) == 2
    assert "no album with id 99999" in capsys.readouterr().err
    assert main([*base, "--bpm", "--run", "1"]) == 2
    assert main([*base, "--undo", "--bpm"]) == 2


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.corpus
def test_read_only_file_is_an_error_record_and_the_others_are_written(fresh, capsys):
    library, data = fresh
    locked = library / "Lupus/Legacy/01 Uncertain Future.mp3"
    locked.chmod(0o444)
    digest = hashlib.sha256(locked.read_bytes()).hexdigest()
    assert main(["write-tags", "--data-dir", str(data.root), "--replaygain", "--dry-run"]) == 1
    assert "FAILED" in capsys.readouterr().out  # the dry run foresees it, and records nothing
    with connection(data.catalog_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM scan_errors").fetchone()[0] == 0
    code = main(["write-tags", "--data-dir", str(data.root), "--replaygain", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["files_failed"] == 1 and report["files_written"] == 4
    assert report["errors_by_reason"] == {"file is read-only": 1}
    assert hashlib.sha256(locked.read_bytes()).hexdigest() == digest and (locked.stat().st_mode & 0o777) == 0o444
    with connection(data.catalog_url) as conn:
        row = conn.execute("SELECT stage, reason, detail FROM scan_errors WHERE path = ?", (str(locked),)).fetchone()
    assert tuple(row)[:2] == (repo.WRITE_BACK_STAGE, "file is read-only") and "chmod" in row[2]


@pytest.mark.corpus
def test_read_only_mount_is_an_error_record(tmp_path, corpus_dir, data_dir):
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN): the read-only mount case cannot be set up here")
    try:
        library = _library(mount / "music", corpus_dir, {"A/song.mp3": SONGS["Severn/Warzone/01 Track 1.mp3"]})
        data = DataDir(data_dir)
        with connection(data.catalog_url) as conn:
            scan_catalog(conn, [library])
            assert subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=False).returncode == 0
            stats = write_back(conn, _request(conn, frozenset({"musicbrainz_ids"})))
            assert stats.files_failed == 0  # nothing known to write: the file is not even opened for writing
            conn.execute("UPDATE albums SET musicbrainz_release_id = ?", (RELEASE,))
            stats = write_back(conn, _request(conn, frozenset({"musicbrainz_ids"})))
            assert stats.errors_by_reason == {"read-only file system": 1}
            assert conn.execute("SELECT reason FROM scan_errors WHERE stage = ?",
                                (repo.WRITE_BACK_STAGE,)).fetchone()[0] == "read-only file system"
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.corpus
def test_a_link_leading_out_of_the_library_is_never_written(fresh, tmp_path):
    library, data = fresh
    inside = library / "Jens Erler/Musix/02 Legolodio.flac"
    outside = tmp_path / "outside.flac"
    shutil.copy(inside, outside)
    inside.unlink()
    inside.symlink_to(outside)  # swapped after the scan
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    with connection(data.catalog_url) as conn:
        stats = write_back(conn, _request(conn))
    assert stats.errors_by_reason == {"outside library roots": 1} and stats.files_written == 4
    assert hashlib.sha256(outside.read_bytes()).hexdigest() == digest


@pytest.mark.corpus
def test_undo_leaves_a_file_changed_since_alone(fresh):
    library, data = fresh
    edited = library / "Jens Erler/Musix/01 Madeira Stew.flac"
    with connection(data.catalog_url) as conn:
        write_back(conn, _request(conn, frozenset({"replaygain"})))
        audio = mutagen.File(str(edited))
        audio["REPLAYGAIN_TRACK_GAIN"] = ["-1.00 dB"]  # the user's own tagger, after us
        audio.save()
        undone = undo_write_back(conn)
        assert undone.entries_restored == 4 and undone.errors_by_reason == {"changed since written": 1}
        assert mutagen.File(str(edited))["REPLAYGAIN_TRACK_GAIN"] == ["-1.00 dB"]
        assert conn.execute("SELECT reason FROM scan_errors WHERE path = ?", (str(edited),)).fetchone()[0] \
            == "changed since written"


# ---------------------------------------------------------------------------------------------- ids, covers


@pytest.mark.corpus
def test_musicbrainz_ids_of_an_online_match_are_written_as_picard_does(fresh):
    library, data = fresh
    path = library / "Severn/Warzone/01 Track 1.mp3"
    with connection(data.catalog_url) as conn:
        track_id, album_id = conn.execute("SELECT track_id, album_id FROM tracks WHERE path = ?", (str(path),)).fetchone()
        with transaction(conn):
            external.save_album_match(conn, album_id, status="matched", source="musicbrainz", now="2026-01-01T00:00:00Z",
                                      best={"release_id": RELEASE, "release_group_id": None, "score": 0.97},
                                      album_track_count=1, candidates=[])
            external.save_track_external(conn, [(track_id, "musicbrainz", RECORDING, None, None, 0.97,
                                                 "2026-01-01T00:00:00Z")])
        stats = write_back(conn, _request(conn, frozenset({"musicbrainz_ids"}), track_ids=[track_id]))
    from mutagen.id3 import ID3

    tags = ID3(str(path))
    assert stats.files_written == 1 and stats.fields_written["musicbrainz_release_id"] == 1
    assert tags["TXXX:MusicBrainz Album Id"].text == [RELEASE]
    assert tags["UFID:http://musicbrainz.org"].data.decode() == RECORDING


@pytest.mark.corpus
def test_covers_go_into_album_folders_without_one_and_undo_removes_them(tmp_path, corpus_dir, data_dir):
    from soniquebay_assets.artwork.sources import EmbeddedSource, FolderSource
    from soniquebay_assets.pipeline.covers import fetch_album_covers

    library = _library(tmp_path / "music", corpus_dir, {
        "Pictured/Album/01.flac": "edge/beets/image.flac",  # embedded pictures, no folder image
        "Foldered/Album/01.flac": SONGS["Jens Erler/Musix/01 Madeira Stew.flac"],
    })
    (library / "Foldered/Album/folder.jpg").write_bytes((corpus_dir / "edge/beets/abbey.jpg").read_bytes())
    data = DataDir(data_dir)
    with connection(data.catalog_url) as conn:
        shards = scan_catalog(conn, [library])
        fetch_album_covers(conn, shards, data_dir=data, sources=[EmbeddedSource(), FolderSource()])
        stats = write_back(conn, _request(conn, frozenset({"covers"}), covers_dir=data.covers))
        written = library / "Pictured/Album/cover.jpg"
        assert stats.covers_written == 1 and stats.covers_present == 1
        assert written.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, whatever the stored format
        assert not (library / "Foldered/Album/cover.jpg").exists()
        again = write_back(conn, _request(conn, frozenset({"covers"}), covers_dir=data.covers))
        assert again.covers_written == 0 and again.covers_present == 2
        assert undo_write_back(conn, run_id=stats.run_id).entries_restored == 1
        assert not written.exists()


# ---------------------------------------------------------------------------------------------- killed writers


@pytest.mark.corpus
def test_a_pending_write_of_a_dead_run_is_settled_from_the_file(fresh):
    library, data = fresh
    from soniquebay_assets.library.tag_blocks import KeyEdit
    from soniquebay_assets.library.tag_writer import read_native, write_file

    path = library / "Jens Erler/Musix/02 Legolodio.flac"
    with connection(data.catalog_url) as conn:
        file_id = conn.execute("SELECT file_id FROM files WHERE path = ?", (str(path),)).fetchone()[0]
        with transaction(conn):
            run_id = repo.start_run(conn, "write", "cli", ["bpm"], {})
            entry = repo.journal_pending(conn, run_id, kind="tags", path=str(path), file_id=file_id, fmt="flac",
                                         changes=[{"field": "bpm", "key": "BPM", "before": None, "after": ["99"],
                                                   "before_raw": None}])
            other = repo.journal_pending(conn, run_id, kind="tags", path=str(path), file_id=file_id, fmt="flac",
                                         changes=[{"field": "bpm", "key": "BPM", "before": None, "after": ["77"],
                                                   "before_raw": None}])
        _, state = read_native(str(path), "flac")
        write_file(str(path), "flac", [KeyEdit("BPM", ("99",))], state)  # the file was renamed, then the run died
        assert settle_pending(conn) == 2
        states = dict(conn.execute("SELECT entry_id, state FROM tag_write_journal").fetchall())
        assert states == {entry: "written"}  # the one that never reached the file is dropped
        assert conn.execute("SELECT size FROM files WHERE file_id = ?", (file_id,)).fetchone()[0] == path.stat().st_size
    assert other not in states


@pytest.mark.corpus
def test_sigkill_mid_write_leaves_the_original_intact(tmp_path, corpus_dir, data_dir):
    library = tmp_path / "music"
    big = library / "Long/Album/long.wav"
    big.parent.mkdir(parents=True)
    rng = np.random.default_rng(7)
    sf.write(str(big), (rng.standard_normal((44100 * 240, 2)) * 3000).astype(np.int16), 44100, subtype="PCM_16")
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    data = DataDir(data_dir)
    with connection(data.catalog_url) as conn:
        scan_catalog(conn, [library])
        track_id = conn.execute("SELECT track_id FROM tracks").fetchone()[0]
        with transaction(conn):
            analysis_repo.save_analyses(conn, [(track_id, 7, {"status": "ok", "bpm": 121.0, "bpm_confidence": 0.8})])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-m", "soniquebay_assets.cli.main", "write-tags", "--bpm",
                               "--data-dir", str(data.root)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".long.wav.sbwrite-") for p in big.parent.iterdir()):
            assert writer.poll() is None, "the writer finished before its copy was seen"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        os.kill(writer.pid, signal.SIGKILL)  # mid-copy or mid-edit of the copy
    finally:
        writer.wait(timeout=30)
    assert hashlib.sha256(big.read_bytes()).hexdigest() == digest  # the original is whole and untouched
    leftovers = [p for p in big.parent.iterdir() if p.name.startswith(".long.wav.sbwrite-")]
    assert leftovers
    with connection(data.catalog_url) as conn:
        assert [r[0] for r in conn.execute("SELECT state FROM tag_write_journal")] == ["pending"]
        stats = write_back(conn, _request(conn, frozenset({"bpm"})))  # the next run settles and writes
        assert stats.pending_settled == 1 and stats.files_written == 1
        assert [r[0] for r in conn.execute("SELECT state FROM tag_write_journal ORDER BY entry_id")] == ["written"]
    assert read_tags(str(big)).bpm == 121
    assert not [p for p in big.parent.iterdir() if p.name.startswith(".")]  # the dead writer's copy is gone


# ---------------------------------------------------------------------------------------------- Dagster


@pytest.mark.corpus
def test_the_asset_writes_only_when_the_setting_names_fields(fresh, tmp_path, monkeypatch):
    from dagster import materialize

    from soniquebay_assets.dagster_defs.assets.write_back import tags_written_back
    from soniquebay_assets.dagster_defs.deferred_sensors import build_kind_jobs
    from soniquebay_assets.dagster_defs.partitions import range_tags
    from soniquebay_assets.dagster_defs.resources import CatalogResource
    from soniquebay_assets_tests.scan_helpers import metadata_of, test_instance

    library, data = fresh
    with connection(data.catalog_url) as conn:
        shards = sorted({r[0] for r in conn.execute("SELECT shard FROM tracks")})
    before = _digests(library)
    groups = ["metadata", "online", "vector", "cover", "writeback"]

    def run():
        with test_instance(tmp_path) as instance:
            result = materialize([tags_written_back], instance=instance, tags=range_tags(shards[0], shards[-1]),
                                 resources={"catalog": CatalogResource(data_dir_path=str(data.root))})
            return metadata_of(result, "tags_written_back")

    monkeypatch.delenv("SONIQUEBAY_WRITE_TAGS", raising=False)
    off = run()
    assert off["enabled"] is False and "SONIQUEBAY_WRITE_TAGS" in off["how_to_enable"]
    assert _digests(library) == before
    assert "writeback" not in build_kind_jobs(groups)["enrichment"].selection.selected_groups  # not after enrichment
    monkeypatch.setenv("SONIQUEBAY_WRITE_TAGS", "replaygain,key")
    on = run()
    assert on["enabled"] is True and on["files_written"] == 5 and on["journal_run"] > 0
    assert _digests(library) != before
    assert "writeback" in build_kind_jobs(groups)["enrichment"].selection.selected_groups  # follows enrichment now


@pytest.mark.corpus
def test_a_deferred_run_writes_what_it_claimed_and_with_replaygain_the_rest_of_their_albums(fresh, tmp_path,
                                                                                           monkeypatch):
    from dagster import materialize

    from soniquebay_assets.catalog import deferred
    from soniquebay_assets.dagster_defs import deferred_sensors as ds
    from soniquebay_assets.dagster_defs.assets.write_back import tags_written_back
    from soniquebay_assets.dagster_defs.resources import CatalogResource
    from soniquebay_assets_tests.scan_helpers import metadata_of, test_instance

    library, data = fresh
    album = sorted(str(p) for p in (library / "Jens Erler" / "Musix").glob("*.flac"))
    with connection(data.catalog_url) as conn:
        track_id, shard = conn.execute("SELECT track_id, shard FROM tracks WHERE path = ?", (album[0],)).fetchone()
        conn.execute("UPDATE deferred_work SET state = 'done'")

    def deferred_run(fields: str) -> dict:
        monkeypatch.setenv("SONIQUEBAY_WRITE_TAGS", fields)
        with connection(data.catalog_url) as conn:
            deferred.enqueue(conn, "enrichment", "track", [(track_id, shard)])
            [request] = ds.request_for_kind(conn, "enrichment")
        with test_instance(tmp_path) as instance:
            result = materialize([tags_written_back], instance=instance, tags=request.tags,
                                 resources={"catalog": CatalogResource(data_dir_path=str(data.root))})
        with connection(data.catalog_url) as conn:
            ds.settle_claim(conn, request.tags, success=True)
        return metadata_of(result, "tags_written_back")

    bpm = deferred_run("bpm")
    assert bpm["tracks"] == 1  # the claimed track alone
    replaygain = deferred_run("replaygain")
    assert (replaygain["tracks"], replaygain["files_written"]) == (2, 2)  # its album's gain is the other's too
    assert replaygain["not_written_by_reason"] == "_none_"
    assert all(_replaygain_tags(Path(p))["REPLAYGAIN_ALBUM_GAIN"] for p in album)


def _replaygain_tags(path: Path) -> dict[str, str]:
    """The ReplayGain (and Opus R128) tags of a file as mutagen reads them: name -> first value."""
    audio = mutagen.File(str(path))
    found = {}
    for key in audio.keys():
        name = (key.split(":", 1)[1] if key.startswith("TXXX:") else key).upper()
        if name.startswith(("REPLAYGAIN_", "R128_")):
            value = audio[key]
            found[name] = str(value.text[0] if hasattr(value, "text") else value[0])
    return found


@pytest.mark.corpus
def test_replaygain_comes_from_the_whole_track_meter_and_waits_for_tracks_not_measured_again(fresh, capsys):
    """write-tags --replaygain on real songs. A track an older meter measured (its gain 3-6 dB off) is reported and
    left as it is, and so is the rest of its album; a plain `enrich` re-measures its loudness (tempo and key kept
    to the byte), then track and album values reach the files as the catalog and loudgain -a measure them."""
    from soniquebay_assets.catalog.analysis import replaygain_for_tracks
    from soniquebay_assets.domain.tag_writing import r128_gain
    from soniquebay_assets.library.loudness_reference import loudgain

    library, data = fresh
    album = sorted((library / "Jens Erler" / "Musix").glob("*.flac"))
    base = ["--data-dir", str(data.root)]
    with connection(data.catalog_url) as conn:
        older = conn.execute("SELECT track_id FROM tracks WHERE path = ?", (str(album[0]),)).fetchone()[0]
        kept = tempo_and_key(conn)
        # as analysis version 7 left it: excerpt loudness, several dB off, no gating blocks for the album
        conn.execute("UPDATE track_analysis SET analysis_version = 7, loudness_histogram = NULL, "
                     "replaygain_track_gain_db = replaygain_track_gain_db + 4.5 WHERE track_id = ?", (older,))
    untouched = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in album}

    assert main(["write-tags", *base, "--replaygain", "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["tracks_not_written_by_reason"] == {repo.NOT_MEASURED_YET: 1, repo.ALBUM_NOT_MEASURED_YET: 1}
    assert planned["files_written"] == 3 and not [f for f in planned["files"] if "/Jens Erler/" in f["path"]]
    assert main(["write-tags", *base, "--replaygain"]) == 0
    shown = capsys.readouterr().err
    assert "1 not measured yet (re-run enrichment)" in shown and "1 album not measured as a whole yet" in shown
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in album} == untouched

    assert main(["enrich", *base, "--workers", "1"]) == 0  # no flag: what an older version measured is due
    enriched = json.loads(capsys.readouterr().out)
    assert (enriched["analyzed"], enriched["parts_recomputed"], enriched["outdated_version"]) == \
        (1, {"loudness": 1, "tags": 1, "moods": 1}, 0)  # a version-7 row predates the learned tags too
    assert enriched["albums_gated"] >= 1
    assert main(["enrich", *base, "--force-version"]) == 0  # retired: accepted, says so, nothing more to do
    retired = capsys.readouterr()
    assert "no longer needed" in retired.err and json.loads(retired.out)["analyzed"] == 0
    with connection(data.catalog_url) as conn:
        assert tempo_and_key(conn) == kept
        paths = dict(conn.execute("SELECT track_id, path FROM tracks").fetchall())
        gains = replaygain_for_tracks(conn, list(paths))
    assert set(gains) == set(paths) and all(g.album_gain_db is not None for g in gains.values())

    assert main(["write-tags", *base, "--replaygain", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["files_written"] == 2 and written["tracks_not_written_by_reason"] == {}
    for track_id, path in paths.items():
        tags, gain = _replaygain_tags(Path(path)), gains[track_id]
        if path.endswith(".opus"):  # RFC 7845: Q7.8 dB relative to -23 LUFS, no peaks
            assert (tags["R128_TRACK_GAIN"], tags["R128_ALBUM_GAIN"]) == \
                (r128_gain(gain.track_gain_db), r128_gain(gain.album_gain_db))
            continue
        assert tags == {"REPLAYGAIN_TRACK_GAIN": f"{gain.track_gain_db:.2f} dB",
                        "REPLAYGAIN_TRACK_PEAK": f"{gain.track_peak:.6f}",
                        "REPLAYGAIN_ALBUM_GAIN": f"{gain.album_gain_db:.2f} dB",
                        "REPLAYGAIN_ALBUM_PEAK": f"{gain.album_peak:.6f}"}, path
    if shutil.which("loudgain") is None:
        return  # the catalog's values were compared above; loudgain (apt-get install loudgain) adds a reference
    tracks, whole = loudgain(album, album=True)
    assert whole.error is None, whole.error
    for path, reference in zip(album, tracks, strict=True):
        tags = _replaygain_tags(path)
        assert float(tags["REPLAYGAIN_TRACK_GAIN"].split()[0]) == pytest.approx(-18 - reference.integrated_lufs,
                                                                                  abs=0.1), path
        assert 20 * np.log10(float(tags["REPLAYGAIN_TRACK_PEAK"])) == pytest.approx(reference.true_peak_dbtp,
                                                                                     abs=0.3), path
        assert float(tags["REPLAYGAIN_ALBUM_GAIN"].split()[0]) == pytest.approx(-18 - whole.integrated_lufs, abs=0.2)


@pytest.mark.corpus
def test_write_tags_shows_a_progress_bar_on_a_terminal_and_keeps_piped_lines_clean(fresh):
    """stderr a terminal, stdout a pipe: the bar goes to the terminal, the per-file lines to the pipe untouched."""
    import pty

    library, data = fresh
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "soniquebay_assets.cli.main", "write-tags", "--data-dir",
                             str(data.root), "--replaygain", "--dry-run"], stdout=subprocess.PIPE,
                            stderr=terminal, stdin=subprocess.DEVNULL, env=env)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out, _ = proc.communicate(timeout=300)
    os.close(controller)
    assert proc.returncode == 0
    lines = out.decode().splitlines()
    assert len(lines) == 5 and all(line.startswith("would write") for line in lines), lines
    assert "\x1b" not in out.decode()  # no terminal codes in what a script reads
    assert b"write-back" in shown and b"5/5" in shown
