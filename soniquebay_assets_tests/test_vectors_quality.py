"""On the shared corpus, nearest neighbours share album/artist/genre far more often than random tracks."""

from __future__ import annotations

import pytest

from soniquebay_assets.catalog import db
from soniquebay_assets.pipeline import scan
from soniquebay_assets.pipeline import vectorize as vz
from soniquebay_assets_tests.vectors_support import text_model  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.corpus, pytest.mark.slow, pytest.mark.usefixtures("text_model")]


@pytest.fixture(scope="module")
def corpus_catalog(corpus_dir, tmp_path_factory):
    """The corpus cataloged by the scan pipeline, then vectorized."""
    conn = db.open_catalog(tmp_path_factory.mktemp("corpus_vectors") / "catalog.db")
    plan = scan.plan_scan(conn, [corpus_dir])
    scan.inventory_shards(conn, plan.walk, plan.affected)
    scan.extract_shards(conn, plan.affected, workers=1)
    scan.catalog_shards(conn, plan.affected)
    stats = vz.vectorize_shards(conn, None)
    yield conn, stats
    conn.close()


def test_corpus_vectors_are_valid(corpus_catalog):
    conn, stats = corpus_catalog
    assert stats.vectorized >= 300 and stats.failed == 0
    report = vz.validate_vectors(conn)
    assert report["ok"] and report["missing"] == 0, report


def test_neighbours_share_album_artist_or_genre_far_more_than_random(corpus_catalog):
    conn, _ = corpus_catalog
    quality = vz.neighbour_quality(conn, k=5)
    for flavour in ("all_relations", "tagged_relations"):
        metric = quality[flavour]
        assert metric["queries"] >= 50, metric
        # a clear margin: at least 0.4 absolute and 3x the random share, and most queries beat random
        assert metric["neighbour_related_share"] >= metric["random_related_share"] + 0.4, metric
        assert metric["lift"] >= 3, metric
        assert metric["queries_better_than_random"] >= 0.8, metric
