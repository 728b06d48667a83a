"""A progress hook: the CLI installs a reporter (a progress bar); Dagster runs leave it silent."""

from __future__ import annotations

from collections.abc import Callable

Reporter = Callable[[str, int, int], None]  # (stage label, done, total)
_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter


def report(stage: str, done: int, total: int) -> None:
    if _reporter is not None:
        _reporter(stage, done, total)
