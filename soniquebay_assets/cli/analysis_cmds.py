"""`soniquebay eval tempo|key --truth FILE` (accuracy of the analysis pipeline against a TSV of truths) and
`soniquebay enrich` (run audio enrichment on the catalog outside Dagster, e.g. after an ANALYSIS_VERSION bump)."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail, print_json


def register(subparsers) -> None:
    evaluate = subparsers.add_parser("eval", help="measure tempo or key accuracy against a truth file")
    kinds = evaluate.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    for kind, what in (("tempo", "BPM"), ("key", "key such as 'A minor', 'F#', 'Ebm'")):
        sub = kinds.add_parser(kind, help=f"{kind} accuracy; truth TSV: path <TAB> {what}")
        sub.add_argument("--truth", type=Path, required=True,
                         help=f"TSV: audio path (absolute or relative to the TSV) <TAB> true {what}")
        sub.add_argument("--verbose", action="store_true", help="include one row per file")
        sub.add_argument("--workers", type=int, default=None, help="analysis processes (default: one per core)")
        sub.set_defaults(handler=run_eval, eval_kind=kind)

    enrich = subparsers.add_parser("enrich", help="analyse catalog tracks that need it (tempo, key, loudness...)")
    add_data_dir(enrich)
    enrich.add_argument("--force-version", action="store_true",
                        help="also re-analyse tracks analysed by an older analysis version")
    enrich.add_argument("--retry-errors", action="store_true", help="also retry tracks whose analysis failed")
    enrich.add_argument("--workers", type=int, default=None, help="analysis processes (default: one per core)")
    enrich.set_defaults(handler=run_enrich)


def read_truth(path: Path) -> list[tuple[Path, str]]:
    """(audio path, truth text) rows; blank lines, '#' comments and a header without a readable file are skipped."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2:
            raise ValueError(f"{path}: expected 'path<TAB>value', got {line!r}")
        audio = Path(parts[0])
        audio = audio if audio.is_absolute() else path.parent / audio
        if not rows and parts[0].lower() in ("path", "file", "filename"):
            continue
        rows.append((audio, parts[1].strip()))
    return rows


def run_eval(args: argparse.Namespace) -> int:
    from soniquebay_assets.domain.analysis import evaluation
    from soniquebay_assets.pipeline.enrich import _run

    try:
        truth = read_truth(args.truth)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    if not truth:
        return fail(f"{args.truth}: no rows")
    try:  # validate every truth value before spending minutes on analysis
        for _, value in truth:
            _parse_bpm(value) if args.eval_kind == "tempo" else evaluation.parse_key(value)
    except ValueError as exc:
        return fail(f"{args.truth}: unreadable truth value ({exc})")
    items = [SimpleNamespace(path=str(p), duration_s=None, truth=t) for p, t in truth]
    outcomes = {item.path: outcome["values"] for item, outcome in _run(items, args.workers, _numba_cache())}
    rows = []
    if args.eval_kind == "tempo":
        pairs = []
        for item in items:
            values, true_bpm = outcomes[item.path], _parse_bpm(item.truth)
            pairs.append((values.get("bpm"), true_bpm))
            rows.append({"path": item.path, "truth": true_bpm, "bpm": values.get("bpm"),
                         "confidence": values.get("bpm_confidence"),
                         "accuracy1": evaluation.tempo_correct(values.get("bpm"), true_bpm),
                         "accuracy2": evaluation.tempo_correct(values.get("bpm"), true_bpm, octave_errors=True),
                         "status": values.get("status"), "error": values.get("error")})
        scores = evaluation.tempo_accuracy(pairs)
        report = {"metric": "tempo", "n": scores.n, "accuracy1": round(scores.accuracy1, 4),
                  "accuracy2": round(scores.accuracy2, 4), "tolerance": evaluation.TEMPO_TOLERANCE,
                  "not_measured": sum(1 for e, _ in pairs if e is None)}
    else:
        pairs = []
        for item in items:
            values, true_key = outcomes[item.path], evaluation.parse_key(item.truth)
            estimate = (evaluation.parse_key(values["key"])[0], values["mode"]) if values.get("key") else None
            pairs.append((estimate, true_key))
            rows.append({"path": item.path, "truth": item.truth,
                         "key": f"{values['key']} {values['mode']}" if values.get("key") else None,
                         "confidence": values.get("key_confidence"),
                         "relation": evaluation.key_relation(estimate, true_key), "status": values.get("status"),
                         "error": values.get("error")})
        scores = evaluation.key_accuracy(pairs)
        report = {"metric": "key", "n": scores.n, "exact": round(scores.exact, 4),
                  "mirex_weighted": round(scores.weighted, 4), "relations": scores.relations,
                  "not_measured": sum(1 for e, _ in pairs if e is None)}
    if args.verbose:
        report["rows"] = rows
    print_json(report)
    return 0


def _parse_bpm(text: str) -> float:
    """'170', '170.5' or 'bpm=170' (the corpus MANIFEST style)."""
    return float(text.strip().removeprefix("bpm=").split()[0])


def _numba_cache() -> str:
    from soniquebay_assets.settings import DataDir

    return str(DataDir().numba_cache)


def run_enrich(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import queries
    from soniquebay_assets.catalog.db import open_catalog
    from soniquebay_assets.pipeline.enrich import enrich_shards

    data = data_dir_from(args)
    conn = open_catalog(data.catalog_url)
    try:
        shards = queries.cataloged_shards(conn)
        stats = enrich_shards(conn, shards, data_dir=data, workers=args.workers,
                              force_version=args.force_version, retry_errors=args.retry_errors)
    finally:
        conn.close()
    print_json(stats)
    return 0
