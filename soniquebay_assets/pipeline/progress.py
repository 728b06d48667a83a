"""A progress hook: the CLI installs a reporter (a progress bar); Dagster runs leave it silent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Reporter = Callable[[str, int, int], None]  # (stage label, done, total)
# A caller's display: called once per run or pass, a context manager giving the reporter that shows progress.
ProgressDisplay = Callable[[], AbstractContextManager[Reporter | None]]
_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter


def report(stage: str, done: int, total: int) -> None:
    if _reporter is not None:
        _reporter(stage, done, total)


@contextmanager
def shown_on(display: ProgressDisplay | None) -> Iterator[None]:
    """The stages' progress reports go to the caller's display for the block (nowhere without one)."""
    if display is None:
        yield
        return
    with display() as reporter:
        set_reporter(reporter)
        try:
            yield
        finally:
            set_reporter(None)
