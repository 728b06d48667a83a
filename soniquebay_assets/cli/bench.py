"""`soniquebay bench NAME`: benchmarks that print one JSON object each."""

from __future__ import annotations

import argparse
import importlib

from soniquebay_assets.cli.common import print_json

# name -> module exposing add_arguments(parser) and run(args) -> dict
BENCHMARKS = {
    "scan": "soniquebay_assets.cli.bench_scan",
    "tags": "soniquebay_assets.cli.bench_tags",
    "analyze": "soniquebay_assets.cli.bench_analyze",
    "vectors": "soniquebay_assets.cli.bench_vectors",
    "celery": "soniquebay_assets.cli.bench_celery",
    "api": "soniquebay_assets.cli.bench_api",
    "playlists": "soniquebay_assets.cli.bench_playlists",
    "scale": "soniquebay_assets.cli.bench_scale",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print one JSON object")
    benches = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        sub = benches.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(handler=_runner(module))


def _runner(module):
    def handler(args: argparse.Namespace) -> int:
        print_json(module.run(args))
        return 0

    return handler
