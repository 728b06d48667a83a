"""The track_embeddings asset with its validate_vectors check, and the similar/vectors commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from dagster import AssetKey, instance_for_test, materialize

from soniquebay_assets.cli.main import main
from soniquebay_assets.dagster_defs.assets.vectors import track_embeddings
from soniquebay_assets.dagster_defs.definitions import defs
from soniquebay_assets.dagster_defs.partitions import range_tags
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.domain.layout import SHARD_COUNT
from soniquebay_assets.queues import QUEUE_TAG, WORKER_VECTOR
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests import vectors_support as vs
from soniquebay_assets_tests.vectors_support import text_model  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.usefixtures("text_model"), pytest.mark.both_backends]


@pytest.fixture()
def catalog_dir(data_dir):
    conn = vs.new_catalog(DataDir(data_dir).catalog_url)
    ids = {}
    for shard, artist, album, genre, titles in (
        ("00", "Nina Simone", "Pastel Blues", "jazz", ["Be My Husband", "Nobody Knows You"]),
        ("01", "Slayer", "Reign in Blood", "thrash metal", ["Angel of Death", "Raining Blood"]),
    ):
        for title in titles:
            ids[title] = vs.add_track(conn, f"/lib/{album}/{title}.flac", title=title, artists=[artist], album=album,
                                      genres=[genre], year=1966, shard=shard)
    vs.add_analysis(conn, ids["Angel of Death"], bpm=210.0, key="A", mode="minor", camelot="8A")
    vs.add_analysis(conn, ids["Raining Blood"], bpm=200.0, key="E", mode="minor", camelot="9A")
    conn.close()
    return data_dir, ids


def _run(instance, data_dir, shards):
    return materialize(
        [track_embeddings],
        instance=instance,
        resources={"catalog": CatalogResource(data_dir_path=str(data_dir))},
        tags=range_tags(shards),
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )


def test_asset_is_registered_routed_and_partitioned():
    graph = defs.resolve_asset_graph()
    node = graph.get(AssetKey("track_embeddings"))
    assert node.group_name == "vector"
    assert node.partitions_def is not None and len(node.partitions_def.get_partition_keys()) == SHARD_COUNT
    assert {AssetKey("catalog_entities"), AssetKey("enriched_tracks")} <= set(node.parent_keys)
    assert track_embeddings.op.tags[QUEUE_TAG] == WORKER_VECTOR


def test_asset_materializes_shards_and_reports_the_check(catalog_dir):
    data_dir, _ = catalog_dir
    with instance_for_test() as instance:
        first = _run(instance, data_dir, ["00"])
        assert first.success
        mats = first.get_asset_materialization_events()
        metadata = {k: getattr(v, "value", v) for k, v in mats[0].event_specific_data.materialization.metadata.items()}
        assert metadata["vectorized"] == 2 and metadata["text_only"] == 2
        assert metadata["sqlite_driver"] == vs.expected_driver_name()
        check = first.get_asset_check_evaluations()[0]
        assert check.check_name == "validate_vectors"
        assert not check.passed  # shard 01 not vectorized yet: a warning, not corruption
        assert check.severity.value == "WARN" and check.metadata["missing"].value == 2

        second = _run(instance, data_dir, ["00", "01"])
        check = second.get_asset_check_evaluations()[0]
        assert check.passed and check.metadata["n_vectors"].value == 4
        assert len(second.get_asset_materialization_events()) == 2  # one event per partition


def _json_lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_similar_and_vectors_commands(catalog_dir, capsys):
    data_dir, ids = catalog_dir
    assert main(["vectors", "update", "--json", "--data-dir", str(data_dir)]) == 0
    update = _json_lines(capsys)[0]
    assert update["vectorized"] == 4

    assert main(["similar", "--track", "/lib/Reign in Blood/Angel of Death.flac", "-k", "2", "--json",
                 "--data-dir", str(data_dir)]) == 0  # fmt: skip
    rows = _json_lines(capsys)
    assert [r["title"] for r in rows][0] == "Raining Blood"
    assert set(rows[0]) >= {"track_id", "path", "title", "artists", "score"} and rows[0]["artists"] == ["Slayer"]

    assert main(["similar", "--track", str(ids["Angel of Death"]), "--exclude-same-album", "--json",
                 "--data-dir", str(data_dir)]) == 0  # fmt: skip
    assert "Raining Blood" not in [r["title"] for r in _json_lines(capsys)]

    assert main(["similar", "--track", str(ids["Angel of Death"]), "--compatible-keys", "--bpm-min", "190",
                 "--json", "--data-dir", str(data_dir)]) == 0  # fmt: skip
    assert [r["title"] for r in _json_lines(capsys)] == ["Raining Blood"]

    assert main(["similar", "--text", "sad jazz singer", "-k", "1", "--json", "--data-dir", str(data_dir)]) == 0
    assert _json_lines(capsys)[0]["artists"] == ["Nina Simone"]

    assert main(["similar", "--track", "/no/such.flac", "--data-dir", str(data_dir)]) == 2
    assert "no track" in capsys.readouterr().err

    assert main(["vectors", "validate", "--json", "--data-dir", str(data_dir)]) == 0
    report = _json_lines(capsys)[0]
    assert report["ok"] and report["n_vectors"] == 4 and report["sqlite_driver"] == vs.expected_driver_name()

    assert main(["vectors", "rebuild", "--audio-weight", "0.8", "--json", "--data-dir", str(data_dir)]) == 0
    rebuilt = _json_lines(capsys)[0]
    assert rebuilt["rebuilt"] and rebuilt["weights"]["audio"] == 0.8 and rebuilt["vectorized"] == 4


def test_similar_before_any_vectors_says_what_to_do(data_dir, capsys):
    vs.new_catalog(DataDir(data_dir).catalog_url).close()
    assert main(["similar", "--track", "1", "--data-dir", str(data_dir)]) == 2
    assert "no track vectors yet" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter importing Dagster and every asset module
def test_loading_definitions_and_cli_does_not_import_the_model_stack():
    code = (
        "import sys, soniquebay_assets.dagster_defs.definitions, soniquebay_assets.cli.main as m; m.build_parser();"
        "import soniquebay_assets.pipeline.vectorize, soniquebay_assets.catalog.vector_search;"
        "print(sorted(x for x in ('sentence_transformers', 'torch', 'transformers') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
