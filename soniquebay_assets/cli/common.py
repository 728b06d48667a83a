"""Shared CLI plumbing: the data dir option, the Dagster home inside it, JSON output, the progress bar."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from soniquebay_assets.dagster_defs.instance_config import embedded_instance_yaml
from soniquebay_assets.settings import ENV_CATALOG_URL, DataDir, default_data_dir


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="catalog and Dagster home folder (default: $SONIQUEBAY_DATA_DIR or the per-user data dir)")
    parser.add_argument("--catalog-url", default=None,
                        help="catalog database: sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
                             "(default: $SONIQUEBAY_CATALOG_URL, else catalog.db in the data dir)")


def data_dir_from(args: argparse.Namespace) -> DataDir:
    root = args.data_dir.expanduser().resolve() if getattr(args, "data_dir", None) else default_data_dir()
    url = getattr(args, "catalog_url", None)
    if url:
        from soniquebay_assets.catalog.db import backend_of

        backend_of(url)  # a malformed URL fails here, before anything is written
        # runs started from here (in-process or on workers launched by this process) open the same catalog
        os.environ[ENV_CATALOG_URL] = url
    return DataDir(root, catalog_url_override=url or None).ensure()


def use_dagster_home(data: DataDir) -> Path:
    """Point DAGSTER_HOME at the data dir so CLI runs show up in `soniquebay dev` / `dagster dev`."""
    home = data.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(embedded_instance_yaml(str(home / "history" / "runs")), encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["SONIQUEBAY_DATA_DIR"] = str(data.root)
    return home


def instance_home(data: DataDir) -> Path:
    """The Dagster instance in use: $DAGSTER_HOME when it is set (a deployment), else the data dir's own."""
    from soniquebay_assets.settings import dagster_home_from_env

    home = dagster_home_from_env()
    if home is None:
        return use_dagster_home(data)
    if not (home / "dagster.yaml").is_file():
        raise ValueError(f"DAGSTER_HOME={home} has no dagster.yaml; unset it to use {data.dagster_home}")
    os.environ["SONIQUEBAY_DATA_DIR"] = str(data.root)
    return home


class ProgressBar:
    """A rich progress bar on stderr, one line per stage, fed by the pipeline's progress reports (lines printed
    meanwhile scroll above it)."""

    def __init__(self) -> None:
        self.tasks: dict[str, Any] = {}

    @classmethod
    def unless(cls, hidden: bool) -> type[ProgressBar] | None:
        """The display to pass as `progress`: none when asked (--no-progress, --json) or stderr is no terminal."""
        return None if hidden or not sys.stderr.isatty() else cls

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # lines a command prints meanwhile go above the bar when stdout is this terminal, else straight on
        self.progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=False,
                                 redirect_stdout=sys.stdout.isatty())
        self.progress.start()
        return self.report

    def report(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        self.progress.stop()


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def print_listing(items: Iterable[Any], as_json: bool, line: Callable[[Any], str],
                  to_json: Callable[[Any], Any] = lambda item: item) -> None:
    """A listing: with --json one JSON object per line, else one line of text per item."""
    for item in items:
        if as_json:
            print_json(to_json(item))
        else:
            sys.stdout.write(line(item) + "\n")


def print_report(report: dict[str, Any], as_json: bool) -> None:
    """One object: with --json as JSON, else a `key: value` line per entry."""
    if as_json:
        print_json(report)
    else:
        for key, value in report.items():
            sys.stdout.write(f"{key}: {value}\n")


NO_CATALOG = "no catalog yet in this data dir: run `soniquebay scan /path/to/music` first"


def existing_catalog(args: argparse.Namespace) -> str | None:
    """The catalog URL of the data dir `args` name; None when no catalog was made there yet."""
    data = data_dir_from(args)
    return data.catalog_url if data.catalog_exists() else None


def fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"soniquebay: {message}\n")
    return code
