"""The `soniquebay` command: one module per command family, each exposing register(subparsers)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each command family adds its module here.
COMMAND_MODULES = [
    "soniquebay_assets.cli.scan",
    "soniquebay_assets.cli.catalog_cmds",
    "soniquebay_assets.cli.demo",
    "soniquebay_assets.cli.bench",
    "soniquebay_assets.cli.worker_cmds",
    "soniquebay_assets.cli.status_cmds",
    "soniquebay_assets.cli.covers_cmds",
    "soniquebay_assets.cli.analysis_cmds",
    "soniquebay_assets.cli.similar_cmds",
    "soniquebay_assets.cli.export_cmds",
    "soniquebay_assets.cli.catalog_copy_cmds",
    "soniquebay_assets.cli.online_cmds",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soniquebay",
        description="Turn a music folder into a rich, searchable catalog (Dagster assets, embedded by default).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # `soniquebay tracks --json | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from soniquebay_assets.catalog.db import CatalogTooNew, CatalogUnavailable

        if isinstance(exc, CatalogUnavailable | CatalogTooNew):
            sys.stderr.write(f"soniquebay: {exc}\n")
            return 2
        raise
    except KeyboardInterrupt:
        sys.stderr.write("soniquebay: interrupted; the catalog keeps every batch already written\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
