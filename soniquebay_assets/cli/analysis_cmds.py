"""`soniquebay eval tempo|key --truth FILE` (accuracy of the analysis pipeline against a TSV of truths; `eval
loudness` lives in loudness_cmds) and
`soniquebay enrich` (run audio enrichment on the catalog outside Dagster)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

from soniquebay_assets.cli import loudness_cmds
from soniquebay_assets.cli.common import ProgressBar, add_data_dir, data_dir_from, fail, print_json


def register(subparsers) -> None:
    evaluate = subparsers.add_parser("eval", help="measure tempo or key accuracy against a truth file, or loudness "
                                                  "against ffmpeg / loudgain")
    kinds = evaluate.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    for kind, what in (("tempo", "BPM"), ("key", "key such as 'A minor', 'F#', 'Ebm'")):
        sub = kinds.add_parser(kind, help=f"{kind} accuracy; truth TSV: path <TAB> {what} [<TAB> group columns]")
        sub.add_argument("--truth", type=Path, required=True,
                         help=f"TSV: audio path (absolute or relative to the TSV) <TAB> true {what}; with a header "
                              f"row (path, bpm, key, meter, instrument...) the '{'bpm' if kind == 'tempo' else 'key'}'"
                              " column is the truth and the other columns can group the report")
        sub.add_argument("--group", default=None,
                         help="comma-separated header columns to report per value (default: every column with "
                              "at most 12 distinct values)")
        sub.add_argument("--estimates", type=Path, default=None,
                         help="score estimates from a JSON-lines file (fields path, bpm, key, mode, e.g. a peer "
                              "tool's output) instead of running the analysis")
        sub.add_argument("--key-field", default="key",
                         help="with --estimates: the field holding the key (e.g. key_edma; mode_* follows)")
        sub.add_argument("--verbose", action="store_true", help="include one row per file")
        sub.add_argument("--workers", type=int, default=None, help="analysis processes (default: one per core)")
        sub.set_defaults(handler=run_eval, eval_kind=kind)
    loudness_cmds.register_eval(kinds)

    enrich = subparsers.add_parser(
        "enrich", help="analyse catalog tracks that need it (tempo, key, loudness...)",
        description="Analyse the tracks never analysed or whose audio changed, then re-measure those an older "
                    "analysis version measured (only the parts whose code changed since).")
    add_data_dir(enrich)
    # retired: older-version tracks are re-measured without asking; accepted so that scripts keep working
    enrich.add_argument("--force-version", action="store_true", help=argparse.SUPPRESS)
    enrich.add_argument("--retry-errors", action="store_true", help="also retry tracks whose analysis failed")
    enrich.add_argument("--workers", type=int, default=None, help="analysis processes (default: one per core)")
    enrich.add_argument("--no-progress", action="store_true", help="no progress bar")
    enrich.set_defaults(handler=run_enrich)


TRUTH_COLUMNS = {"tempo": ("bpm", "tempo"), "key": ("key",)}
MAX_GROUP_VALUES = 12


def read_truth_table(path: Path, kind: str) -> tuple[list[tuple[Path, str, dict[str, str]]], list[str]]:
    """(audio path, truth text, other columns) rows and the header's other column names.

    Without a header row the truth is the second column; blank lines and '#' comments are skipped."""
    rows: list[tuple[Path, str, dict[str, str]]] = []
    header: list[str] | None = None
    value_index = 1
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2:
            raise ValueError(f"{path}: expected 'path<TAB>value', got {line!r}")
        if header is None and not rows and parts[0].strip().lower() in ("path", "file", "filename"):
            header = [p.strip().lower() for p in parts]
            named = [i for i, name in enumerate(header) if name in TRUTH_COLUMNS[kind]]
            if named:
                value_index = named[0]
            continue
        audio = Path(parts[0])
        audio = audio if audio.is_absolute() else path.parent / audio
        if value_index >= len(parts):
            raise ValueError(f"{path}: row without a {kind} column: {line!r}")
        extra = {name: parts[i].strip() for i, name in enumerate(header or []) if i not in (0, value_index)
                 and i < len(parts)}
        rows.append((audio, parts[value_index].strip(), extra))
    others = [name for i, name in enumerate(header or []) if i not in (0, value_index)]
    return rows, others


def _group_columns(args: argparse.Namespace, rows, others: list[str]) -> list[str]:
    if args.group:
        wanted = [g.strip().lower() for g in args.group.split(",") if g.strip()]
        unknown = [g for g in wanted if g not in others]
        if unknown:
            raise ValueError(f"--group: no column {', '.join(unknown)} in the truth header ({', '.join(others)})")
        return wanted
    truth_names = {name for names in TRUTH_COLUMNS.values() for name in names}
    return [name for name in others if name not in truth_names
            and 1 < len({extra.get(name) for _, _, extra in rows}) <= MAX_GROUP_VALUES]


def _peer_estimates(path: Path, key_field: str) -> dict[str, dict]:
    """JSON-lines estimates keyed by resolved path and by file name (a peer may have run elsewhere)."""
    import json

    mode_field = key_field.replace("key", "mode", 1)
    out: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        values = {"bpm": rec.get("bpm"), "key": rec.get(key_field), "mode": rec.get(mode_field),
                  "bpm_confidence": rec.get("bpm_confidence"), "key_strength": rec.get(key_field.replace("key", "strength", 1) if key_field != "key" else "key_strength"),
                  "status": "error" if rec.get("error") else "ok", "error": rec.get("error")}
        out[str(Path(rec["path"]).resolve())] = values
        out.setdefault(Path(rec["path"]).name, values)
    return out


def run_eval(args: argparse.Namespace) -> int:
    from soniquebay_assets.domain.analysis import evaluation

    try:
        truth, others = read_truth_table(args.truth, args.eval_kind)
        groups = _group_columns(args, truth, others)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    if not truth:
        return fail(f"{args.truth}: no rows")
    try:  # validate every truth value before spending minutes on analysis
        for _, value, _ in truth:
            _parse_bpm(value) if args.eval_kind == "tempo" else evaluation.parse_key(value)
    except ValueError as exc:
        return fail(f"{args.truth}: unreadable truth value ({exc})")
    items = [SimpleNamespace(path=str(p), duration_s=None, stored_version=None, truth=t, extra=extra)
             for p, t, extra in truth]
    if args.estimates:
        try:
            peer = _peer_estimates(args.estimates, args.key_field)
        except (OSError, ValueError, KeyError) as exc:
            return fail(f"{args.estimates}: {exc}")
        missing = {"status": "error", "error": "no estimate in the estimates file"}
        outcomes = {item.path: peer.get(str(Path(item.path).resolve()), peer.get(Path(item.path).name, missing))
                    for item in items}
    else:
        from soniquebay_assets.pipeline.enrich import analyze_tracks

        outcomes = {item.path: outcome.values
                    for item, outcome in analyze_tracks(items, args.workers, _numba_cache())}
    rows, pairs = [], []
    for item in items:
        values = outcomes[item.path]
        if args.eval_kind == "tempo":
            true_bpm = _parse_bpm(item.truth)
            pair = (values.get("bpm"), true_bpm)
            rows.append({"path": item.path, "truth": true_bpm, "bpm": values.get("bpm"),
                         "confidence": values.get("bpm_confidence"),
                         "accuracy1": evaluation.tempo_correct(*pair),
                         "accuracy2": evaluation.tempo_correct(*pair, octave_errors=True),
                         "confusion": evaluation.tempo_confusion(*pair), **item.extra,
                         "status": values.get("status"), "error": values.get("error")})
        else:
            true_key = evaluation.parse_key(item.truth)
            estimate = None
            if values.get("key"):
                estimate = evaluation.parse_key(f"{values['key']} {values.get('mode') or 'major'}")
            pair = (estimate, true_key)
            rows.append({"path": item.path, "truth": item.truth,
                         "key": f"{values['key']} {values.get('mode')}" if values.get("key") else None,
                         "confidence": values.get("key_confidence"), "strength": values.get("key_strength"),
                         "relation": evaluation.key_relation(*pair),
                         "confusion": evaluation.key_confusion(*pair), **item.extra,
                         "status": values.get("status"), "error": values.get("error")})
        pairs.append(pair)
    score = evaluation.tempo_report if args.eval_kind == "tempo" else evaluation.key_report
    report = {"metric": args.eval_kind, **score(pairs), "not_measured": sum(1 for e, _ in pairs if e is None)}
    if args.eval_kind == "tempo":
        report["tolerance"] = evaluation.TEMPO_TOLERANCE
    if args.estimates:
        report["estimates"] = str(args.estimates)
    for column in groups:
        by_value: dict[str, list] = {}
        for item, pair in zip(items, pairs, strict=True):
            by_value.setdefault(item.extra.get(column, ""), []).append(pair)
        report[f"by_{column}"] = {value: score(group) for value, group in sorted(by_value.items())}
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


FORCE_VERSION_RETIRED = ("enrich: --force-version is no longer needed and does nothing: tracks an older analysis "
                         "version measured are re-measured by every enrichment (scan, enrich, the platform's "
                         "deferred runs)")


def run_enrich(args: argparse.Namespace) -> int:
    import sys

    from soniquebay_assets.catalog import queries
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.pipeline.enrich import enrich_shards
    from soniquebay_assets.pipeline.progress import shown_on

    if args.force_version:
        sys.stderr.write(FORCE_VERSION_RETIRED + "\n")
    data = data_dir_from(args)
    with connection(data.catalog_url) as conn, shown_on(ProgressBar.unless(args.no_progress)):
        shards = queries.cataloged_shards(conn)
        stats = enrich_shards(conn, shards, data_dir=data, workers=args.workers, retry_errors=args.retry_errors)
    print_json(asdict(stats))
    return 0
