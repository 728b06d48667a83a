"""Vectorize tracks: new, changed and stale ones only; rebuild; validate. Used by the Dagster asset and the CLI."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np

from soniquebay_assets.catalog import db, deferred, vectors
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets.library import embedder

WRITE_BATCH = 1024
# The scaler is refit over the whole catalog when the number of analysed tracks moved by more than this
# fraction (or at all while it is small); a refit re-derives every audio block, reusing text blocks.
REFIT_DRIFT = 0.25
SMALL_CATALOG = 50
MIN_SCALER_SAMPLES = 2


@dataclass
class VectorStats:
    """What one vectors run did: counts, the embedding work and the vector space it wrote into."""

    seen: int = 0
    unchanged: int = 0
    vectorized: int = 0
    text_reused: int = 0
    text_only: int = 0
    failed: int = 0
    fragments_encoded: int = 0
    fragments_cached: int = 0
    encode_seconds: float = 0.0
    shards: int | str = "all"
    scope: str = "all"  # "shards", or "all" when a scaler refit re-derived the whole catalog
    repaired_text_only: int = 0
    awaiting_analysis: int = 0  # tracks left as they are: their analysis is still to do
    rebuilt: bool = False
    scaler_refit: bool = False
    scaler_version: int | None = None
    orphans_removed: int = 0
    model: str = ""
    dim: int = 0
    weights: dict[str, float] = dataclass_field(default_factory=dict)
    sqlite_driver: str = ""
    seconds: float = 0.0


def _weights(weights: et.Weights | dict | None) -> et.Weights:
    if weights is None:
        return et.Weights()
    return weights if isinstance(weights, et.Weights) else et.Weights(**weights)


def open_space(conn: Any, model: str | None, weights: et.Weights) -> tuple[vectors.VectorSettings, bool, str]:
    """Load sqlite-vec and make sure the recorded space matches model + weights (else rebuild); (settings, rebuilt, driver)."""
    driver = vectors.load_extension(conn)
    name, _ = embedder.resolve_model(model)
    current = vectors.read_settings(conn)
    if current is not None and current.model_name == name:
        text_dim = current.text_dim  # known: no need to load the model just to learn its dimension
    else:
        text_dim = embedder.load_model(model).dimension
    settings, rebuilt = vectors.ensure_space(conn, model_name=name, text_dim=text_dim, weights=weights)
    return settings, rebuilt, driver


def ensure_scaler(conn: Any) -> tuple[et.ScalerStats | None, bool]:
    """The current scaler, refit over every analysed track of the catalog when it drifted; (scaler, refit)."""
    rows = [et.raw_features(a) for a in vectors.read_analysis(conn).values()]
    rows = [r for r in rows if r is not None]
    current = vectors.latest_scaler(conn)
    n_now = len(rows)
    if n_now < MIN_SCALER_SAMPLES:
        return current, False
    if current is not None and tuple(current.names) == et.FEATURE_NAMES:
        n_fit = current.n_samples
        small_and_same = n_fit < SMALL_CATALOG and n_now == n_fit
        if small_and_same or (n_fit >= SMALL_CATALOG and abs(n_now - n_fit) <= REFIT_DRIFT * n_fit):
            return current, False
    with db.transaction(conn):
        fitted = vectors.save_scaler(conn, et.fit_scaler(rows, version=0))
    return fitted, True


class _FragmentEncoder:
    """Embeds text fields with a DB-backed cache; the model is loaded only if some fragment is new."""

    def __init__(self, conn: Any, model: str | None, settings: vectors.VectorSettings, batch_size: int) -> None:
        self.conn, self.model, self.settings, self.batch_size = conn, model, settings, batch_size
        self.encoded = 0
        self.cached = 0
        self.encode_seconds = 0.0

    def text_vectors(self, fields_by_track: dict[int, dict[str, str]]) -> dict[int, np.ndarray]:
        name = self.settings.model_name
        keys = {tid: {f: et.text_hash(text, name) for f, text in fields.items()} for tid, fields in fields_by_track.items()}
        wanted = {key for per_track in keys.values() for key in per_track.values()}
        found = vectors.get_fragments(self.conn, list(wanted), self.settings.text_dim)
        self.cached += len(found)
        missing: dict[str, str] = {}
        for tid, fields in fields_by_track.items():
            for field, text in fields.items():
                key = keys[tid][field]
                if key not in found:
                    missing[key] = text
        if missing:
            text_model = embedder.load_model(self.model)
            if text_model.dimension != self.settings.text_dim:
                raise RuntimeError(f"model {name} gives {text_model.dimension}-d vectors, catalog expects {self.settings.text_dim}")
            started = time.perf_counter()
            encoded = text_model.encode(list(missing.values()), batch_size=self.batch_size)
            self.encode_seconds += time.perf_counter() - started
            new = dict(zip(missing.keys(), encoded, strict=True))
            with db.transaction(self.conn):
                vectors.put_fragments(self.conn, name, new)
            found.update(new)
            self.encoded += len(new)
        return {tid: et.compose_text_vector({f: found[k] for f, k in per_track.items()}) for tid, per_track in keys.items()}


def _stored_text_blocks(conn: Any, settings: vectors.VectorSettings, track_ids: Sequence[int]) -> dict[int, tuple[str, np.ndarray]]:
    """(embedded text, unit text block) of stored vectors: a text that did not change is not re-embedded."""
    out: dict[int, tuple[str, np.ndarray]] = {}
    for track_id, (text, stored) in vectors.stored_texts_and_vectors(conn, track_ids).items():
        block = stored[: settings.text_dim].astype(np.float64)
        norm = float(np.linalg.norm(block))
        if norm > 0 and np.isfinite(norm):
            out[track_id] = (text, (block / norm).astype(np.float32))
    return out


def vectorize_inputs(
    conn: Any,
    inputs: Sequence[vectors.TrackInput],
    settings: vectors.VectorSettings,
    scaler: et.ScalerStats | None,
    *,
    model: str | None = None,
    batch_size: int = embedder.DEFAULT_BATCH_SIZE,
) -> VectorStats:
    """Build and store vectors for the inputs whose input hash changed; returns the counts."""
    counts = VectorStats(seen=len(inputs))
    encoder = _FragmentEncoder(conn, model, settings, batch_size)
    for start in range(0, len(inputs), WRITE_BATCH):
        chunk = inputs[start : start + WRITE_BATCH]
        hashes = vectors.stored_hashes(conn, [t.track_id for t in chunk])
        todo = []
        for item in chunk:
            text = et.embedding_text(item.text)
            raw = et.raw_features(item.text.analysis)
            digest = et.input_hash(text, raw, settings.config_key, scaler.version if scaler else 0)
            if hashes.get(item.track_id) == digest:
                counts.unchanged += 1
            else:
                todo.append((item, text, raw, digest))
        if not todo:
            continue
        stored = _stored_text_blocks(conn, settings, [item.track_id for item, *_ in todo])
        new_text = {item.track_id: text for item, text, *_ in todo}
        text_blocks = {tid: block for tid, (old_text, block) in stored.items() if new_text.get(tid) == old_text}
        counts.text_reused += len(text_blocks)
        fresh = {item.track_id: et.text_fields(item.text) for item, *_ in todo if item.track_id not in text_blocks}
        text_blocks.update(encoder.text_vectors(fresh))
        rows = []
        for item, text, raw, digest in todo:
            audio = et.standardize(raw, scaler) if raw is not None and scaler is not None else None
            try:
                vector = et.combine(text_blocks[item.track_id], audio, settings.weights)
                vectors.check_vector(vector, settings.dim)
            except ValueError as exc:
                counts.failed += 1
                vectors.record_vector_error(conn, item.track_id, "bad_vector", str(exc))
                continue
            rows.append(vectors.VectorRow(item.track_id, vector, digest, audio is None, scaler.version if audio is not None else None, text))
            counts.text_only += audio is None
        with db.transaction(conn):
            vectors.write_vectors(conn, settings, rows)
        counts.vectorized += len(rows)
    counts.fragments_encoded, counts.fragments_cached = encoder.encoded, encoder.cached
    counts.encode_seconds = round(encoder.encode_seconds, 3)
    return counts


def vectorize_shards(
    conn: Any,
    shards: Sequence[str] | None,
    *,
    model: str | None = None,
    weights: et.Weights | dict | None = None,
    batch_size: int = embedder.DEFAULT_BATCH_SIZE,
    skip_awaiting_analysis: bool = False,
) -> VectorStats:
    """Vectorize the new/changed tracks of `shards` (None = all); a model/weights change rebuilds, a scaler refit re-derives all.

    model/weights None keep the ones recorded in the catalog (defaults on a fresh catalog). With
    `skip_awaiting_analysis` (the deferred runs, where the analysis runs apart), a track whose enrichment item is
    still to do keeps its vector as it is: built now it would lack the audio part the analysis brings.
    """
    started = time.perf_counter()
    model, chosen = _recorded_choice(conn, model, weights)
    settings, rebuilt, driver = open_space(conn, model, chosen)
    orphans = vectors.delete_orphans(conn)
    scaler, refit = ensure_scaler(conn)
    # A refit changes every audio block: re-derive the whole catalog now so all vectors share one scaler.
    had_vectors = vectors.has_vectors(conn)
    scope = None if (refit and had_vectors) else shards
    stale = stale_text_only(conn, scaler)
    if stale and scope is not None:  # vectors built before their track's analysis: repaired by whichever vectors run comes next
        scope = sorted(set(scope) | set(stale.values()))
    inputs = vectors.read_track_inputs(conn, scope)
    awaiting = deferred.awaiting_analysis(conn, [t.track_id for t in inputs]) if skip_awaiting_analysis else set()
    inputs = [t for t in inputs if t.track_id not in awaiting]
    stats = vectorize_inputs(conn, inputs, settings, scaler, model=model, batch_size=batch_size)
    stats.shards = len(shards) if shards is not None else "all"
    stats.scope = "all" if scope is None else "shards"
    stats.repaired_text_only = len(stale)
    stats.awaiting_analysis = len(awaiting)
    stats.rebuilt, stats.scaler_refit = rebuilt, refit
    stats.scaler_version = scaler.version if scaler else None
    stats.orphans_removed = orphans
    stats.model, stats.dim, stats.weights = settings.model_name, settings.dim, settings.weights.to_json()
    stats.sqlite_driver = driver
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def _recorded_choice(conn: Any, model: str | None, weights: et.Weights | dict | None) -> tuple[str | None, et.Weights]:
    """Model and weights to use: the given ones, else those recorded in the catalog, else the defaults."""
    current = vectors.read_settings(conn)
    if current is not None:
        if model is None:
            model = None if current.model_name == embedder.DEFAULT_MODEL else current.model_name
        if weights is None:
            weights = current.weights
    return model, _weights(weights)


def update_all(
    conn: Any,
    *,
    model: str | None = None,
    weights: et.Weights | dict | None = None,
    batch_size: int = embedder.DEFAULT_BATCH_SIZE,
) -> VectorStats:
    """Selective update of the whole catalog, keeping the recorded model and weights unless told otherwise."""
    vectors.load_extension(conn)
    model, chosen = _recorded_choice(conn, model, weights)
    return vectorize_shards(conn, None, model=model, weights=chosen, batch_size=batch_size)


def rebuild_index(
    conn: Any,
    *,
    model: str | None = None,
    weights: et.Weights | dict | None = None,
    batch_size: int = embedder.DEFAULT_BATCH_SIZE,
) -> VectorStats:
    """Drop every vector and re-vectorize the whole catalog (cached text fragments are reused)."""
    vectors.load_extension(conn)
    model, chosen = _recorded_choice(conn, model, weights)
    name, _ = embedder.resolve_model(model)
    current = vectors.read_settings(conn)
    text_dim = current.text_dim if current is not None and current.model_name == name else embedder.load_model(model).dimension
    vectors.reset_space(conn, model_name=name, text_dim=text_dim, weights=chosen)
    stats = vectorize_shards(conn, None, model=model, weights=chosen, batch_size=batch_size)
    stats.rebuilt = True
    return stats


def stale_text_only(conn: Any, scaler: et.ScalerStats | None = None) -> dict[int, str]:
    """track_id -> shard of text-only vectors whose track now has usable audio features (and a scaler can exist)."""
    candidates = vectors.text_only_track_shards(conn)
    if not candidates:
        return {}
    analysis = vectors.read_analysis(conn, list(candidates))
    with_features = {tid for tid, row in analysis.items() if et.raw_features(row) is not None}
    if not with_features:
        return {}
    if scaler is None and vectors.latest_scaler(conn) is None:
        analysed = sum(et.raw_features(row) is not None for row in vectors.read_analysis(conn).values())
        if analysed < MIN_SCALER_SAMPLES:  # too few analysed tracks to standardize: text-only is all there is
            return {}
    return {tid: candidates[tid] for tid in sorted(with_features)}


def validate_vectors(conn: Any) -> dict:
    """Dimension, NaN/inf, norm, orphans, missing vectors, text-only vectors beside a finished analysis; plus the
    driver in use."""
    vectors.load_extension(conn)
    report = vectors.validate(conn)
    stale = stale_text_only(conn)
    report["text_only_with_analysis"] = len(stale)
    if stale:
        report.setdefault("defects", []).append(f"{len(stale)} text-only vectors beside a finished analysis")
        report["ok"] = False
        report["examples"] = (report.get("examples") or []) + sorted(stale)[:10]
    report.update(vectors.driver_report(conn))
    return report


def _related(a: tuple, b: tuple) -> dict[str, bool]:
    return {"album": a[0] is not None and a[0] == b[0], "artist": bool(a[1] & b[1]), "genre": bool(a[2] & b[2])}


def neighbour_quality(conn: Any, *, k: int = 5, max_queries: int = 1000) -> dict:
    """The neighbour metric twice: with every relation, and with tag-based relations only (no folder-named albums)."""
    return {
        "all_relations": _neighbour_quality(conn, k=k, max_queries=max_queries, tagged_only=False),
        "tagged_relations": _neighbour_quality(conn, k=k, max_queries=max_queries, tagged_only=True),
    }


def _neighbour_quality(conn: Any, *, k: int, max_queries: int, tagged_only: bool) -> dict:
    """How often a track's k nearest neighbours share its album, an artist or a genre, against random tracks.

    Only tracks with at least one related track count as queries (others cannot score). The random baseline
    is the exact expected share for k neighbours drawn uniformly from the other vectorized tracks.
    """
    from soniquebay_assets.catalog import vector_search

    vectors.load_extension(conn)
    index = vector_search.get_index(conn)
    relations = vector_search.track_relations(conn, tagged_only=tagged_only)
    ids = [int(t) for t in index.ids.tolist()]
    keep = [i for i, t in enumerate(ids) if t in relations]
    per_kind = {"album": [0.0, 0.0], "artist": [0.0, 0.0], "genre": [0.0, 0.0]}
    shares, baselines, wins = [], [], 0
    step = max(1, len(keep) // max_queries)  # evenly spaced queries keep big catalogs affordable (O(queries x n))
    for row in keep[::step]:
        me = relations[ids[row]]
        others = [relations[ids[j]] for j in keep if j != row]
        flags = [_related(me, o) for o in others]
        related_count = sum(any(f.values()) for f in flags)
        if not related_count or len(others) < k:
            continue
        top, _ = index.exact(index.matrix[row], k + 1)
        neighbours = [relations[ids[j]] for j in top.tolist() if j != row and ids[j] in relations][:k]
        hits = [_related(me, n) for n in neighbours]
        share = sum(any(h.values()) for h in hits) / len(hits)
        baseline = related_count / len(others)
        shares.append(share)
        baselines.append(baseline)
        wins += share > baseline
        for kind in per_kind:
            per_kind[kind][0] += sum(h[kind] for h in hits) / len(hits)
            per_kind[kind][1] += sum(f[kind] for f in flags) / len(flags)
    n = len(shares)
    return {
        "k": k,
        "vectors": len(ids),
        "queries": n,
        "neighbour_related_share": round(float(np.mean(shares)), 4) if n else None,
        "random_related_share": round(float(np.mean(baselines)), 4) if n else None,
        "lift": round(float(np.mean(shares) / np.mean(baselines)), 3) if n and np.mean(baselines) else None,
        "queries_better_than_random": round(wins / n, 4) if n else None,
        "by_relation": {
            kind: {"neighbours": round(v[0] / n, 4), "random": round(v[1] / n, 4)} for kind, v in per_kind.items()
        } if n else {},
    }


class NoVectorsYet(LookupError):
    """The catalog has no track vectors to search (the vectors stage has not run)."""


def text_query(conn: Any, text: str) -> np.ndarray:
    """A free-text description as a query vector of the catalog's vector space (the recorded model, loaded once
    per process on first use)."""
    settings = vectors.read_settings(conn)
    if settings is None:
        raise NoVectorsYet("no track vectors yet: run `soniquebay scan PATH` (stage vectors) or "
                           "`soniquebay vectors update`")
    model = embedder.load_model(None if settings.model_name == embedder.DEFAULT_MODEL else settings.model_name)
    return et.query_vector(model.encode([et.clean_field(text, et.MAX_TEXT_CHARS)])[0], settings.weights)
