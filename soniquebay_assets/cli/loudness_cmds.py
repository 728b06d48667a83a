"""`soniquebay eval loudness PATH...`: whole-track loudness, true peak and album gain against ffmpeg's ebur128
filter and loudgain (when installed) or readings given as a file; one JSON object."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from soniquebay_assets.cli.common import fail, print_json


def register_eval(kinds) -> None:
    """Adds `loudness` to the `eval` kinds."""
    sub = kinds.add_parser("loudness", help="loudness, true peak and album gain against ffmpeg ebur128 / loudgain")
    sub.add_argument("paths", type=Path, nargs="+", help="audio files or folders (an album is a folder's files)")
    sub.add_argument("--reference", default="ffmpeg,loudgain",
                     help="comma-separated tools to run when installed: ffmpeg (ebur128 filter), loudgain "
                          "(ReplayGain 2.0, album mode per folder); 'none' with --reference-file only")
    sub.add_argument("--reference-file", type=Path, default=None,
                     help="JSON lines of another tool's readings: {path, integrated_lufs, true_peak_dbtp, "
                          "range_lu} per file, {album: folder, integrated_lufs} per album")
    sub.add_argument("--verbose", action="store_true", help="include one row per file and per album")
    sub.add_argument("--workers", type=int, default=None, help="processes measuring (default: one per core)")
    sub.set_defaults(handler=run_eval_loudness, eval_kind="loudness")


def run_eval_loudness(args: argparse.Namespace) -> int:
    from soniquebay_assets.library.loudness_reference import tool_version
    from soniquebay_assets.pipeline.loudness_eval import REFERENCE_TOOLS, evaluate_loudness

    tools = [t.strip() for t in args.reference.split(",") if t.strip() and t.strip() != "none"]
    unknown = [t for t in tools if t not in REFERENCE_TOOLS]
    if unknown:
        return fail(f"--reference: unknown tool {', '.join(unknown)} (choose from {', '.join(REFERENCE_TOOLS)})")
    installed = [t for t in tools if tool_version(t)]
    if not installed and args.reference_file is None:
        return fail("no loudness reference: install ffmpeg or loudgain (apt-get install ffmpeg loudgain), "
                    "or give --reference-file")
    if args.reference_file is not None and not args.reference_file.is_file():
        return fail(f"--reference-file: {args.reference_file} does not exist")
    try:
        report = evaluate_loudness(args.paths, tools=installed, reference_file=args.reference_file,
                                   workers=args.workers, verbose=args.verbose)
    except (FileNotFoundError, ValueError) as exc:
        return fail(str(exc))
    if report.files == 0:
        return fail("no audio files under " + ", ".join(map(str, args.paths)))
    print_json(asdict(report))
    return 0
