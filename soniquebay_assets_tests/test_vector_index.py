"""The on-disk similar-track index: recall against exact search on real-model vectors, shared files, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from soniquebay_assets.catalog import db, vector_index, vector_search, vectors
from soniquebay_assets.catalog import vector_bench_data as bench_data
from soniquebay_assets.library.bench_library import distinct_library
from soniquebay_assets.pipeline import vectorize as vz
from soniquebay_assets_tests.vectors_support import text_model  # noqa: F401  (session fixture)


@pytest.fixture(scope="module")
def real_catalog(tmp_path_factory):
    """1,500 distinct tracks vectorized by the real pipeline and model (not copies of a few vectors)."""
    conn = db.open_catalog(tmp_path_factory.mktemp("vector_index") / "catalog.db")
    vectors.load_extension(conn)
    bench_data.insert_library(conn, distinct_library(1500, seed=21))
    stats = vz.vectorize_shards(conn, None)
    assert stats.vectorized == 1500
    yield conn
    conn.close()


def _recall(index, queries, k=10):
    recalls = []
    for query, seed_row in queries:
        truth = [r for r in index.exact(query, k + 1)[0].tolist() if r != seed_row][:k]
        rows, _ = index.ranked(query, 1000)
        got = [r for r in rows.tolist() if r != seed_row][:k]
        recalls.append(len(set(got) & set(truth)) / k)
    return float(np.mean(recalls))


@pytest.mark.slow
@pytest.mark.usefixtures("text_model")
def test_probed_lists_and_exact_rerank_keep_recall_on_real_vectors(real_catalog, monkeypatch):
    # scaled down so that 1,500 real vectors go through the list probing (the defaults switch it on at 4,000)
    monkeypatch.setattr(vector_index, "EXACT_BELOW", 200)
    monkeypatch.setattr(vector_index, "POOL_ROWS", 300)
    monkeypatch.setattr(vector_index, "RERANK_ROWS", 64)
    vector_search.forget_indexes()
    index = vector_search.get_index(real_catalog)
    assert len(index) == 1500 and len(index.centroids) == vector_index.list_count(1500)
    assert index.codes.dtype == np.int8 and index.codes.shape[1] < index.dim  # PCA-truncated int8 codes
    rng = np.random.default_rng(3)
    seeds = rng.choice(len(index), 80, replace=False)
    by_seed = [(index.read_rows(np.array([r]))[0], int(r)) for r in seeds]
    assert len(index.probe(by_seed[0][0], 300)) < 1500 / 2  # the probe really narrows the rows scored
    assert _recall(index, by_seed) >= 0.95
    texts = [vz.text_query(real_catalog, t) for t in ("fast punk rock", "calm piano", "jazz from the 1960s",
                                                      "happy house music", "sad folk song")]
    assert _recall(index, [(t, -1) for t in texts]) >= 0.9
    # the float vectors read back from disk are the stored ones, and `similar` answers from the index
    row = int(seeds[0])
    track_id = int(index.ids[row])
    assert np.array_equal(index.read_rows(np.array([row]))[0], vectors.get_vector(real_catalog, track_id))
    found = vector_search.search_similar(real_catalog, track_id=track_id, k=5, describe=False)
    assert [f.track_id for f in found] == [int(index.ids[r]) for r in index.ranked(index.matrix[row], 1000)[0][1:6]]


def test_index_files_are_shared_and_rebuilt_per_generation(tmp_path):
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((300, 24)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    builds = []

    def load(scratch):
        builds.append(scratch)
        return np.arange(1, 301, dtype=np.int64), matrix

    first = vector_index.open_or_build(tmp_path / "base", "g1-a", load)
    again = vector_index.open_or_build(tmp_path / "base", "g1-a", load)  # another process: opens, no build
    assert len(builds) == 1 and again.folder == first.folder
    assert first.position[7] is not None and np.allclose(first.matrix[first.position[7]], matrix[6])
    assert 1000 not in first.position and first.position.get(1000) is None
    newer = vector_index.open_or_build(tmp_path / "base", "g2-b", load)
    assert len(builds) == 2 and not first.folder.exists()  # the older generation's folder is removed
    assert np.allclose(first.read_rows(np.array([first.position[9]]))[0], matrix[8])  # still readable after unlink
    rows, scores = newer.ranked(matrix[0], 10)  # a small index scores exactly
    assert newer.ids[rows[0]] == 1 and scores[0] == pytest.approx(1.0, abs=1e-5)
