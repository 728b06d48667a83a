"""The `soniquebay` command: one module per command family, each exposing register(subparsers)."""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import threading

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
    "soniquebay_assets.cli.write_tags_cmds",
    "soniquebay_assets.cli.serve_cmds",
    "soniquebay_assets.cli.playlist_cmds",
]


# `soniquebay scan` (run by hand, by cron, timed against other scanners) builds its own parser only: the other
# families' modules cost ~0.15 s of imports it never uses. Everything else, `--help` included, builds them all.
OWN_PARSER_COMMANDS = {"scan": "soniquebay_assets.cli.scan"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soniquebay",
        description="Turn a music folder into a rich, searchable catalog (Dagster assets, embedded by default).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [OWN_PARSER_COMMANDS[command]] if command in OWN_PARSER_COMMANDS else COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # `soniquebay tracks --json | head`: the reader left, not an error
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


def entry_point() -> None:
    """The `soniquebay` command: main(), then its exit handlers, without tearing the interpreter down."""
    code = main()
    # Freeing every module and object of a process that imported Dagster takes 0.5-1.5 s of CPU for nothing: when
    # no other thread is left, run the exit handlers (log flushing, pool finalizers), flush and leave. Under a
    # profiler or tracer (cProfile, debuggers) exit normally: they write their results after main returns.
    if threading.active_count() == 1 and sys.getprofile() is None and sys.gettrace() is None:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
