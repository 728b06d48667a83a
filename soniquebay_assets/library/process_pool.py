"""The one way a stage runs work in a process pool: start method, owner guard and crash handling decided here.

`pool_map(func, items)` yields `(index, result)` as results arrive, where `result` is `func(items[index])` or a
`WorkerFailure`. A child that raises costs only its own item (`worker_error`); a child that dies (native crash,
SIGKILL, OOM, `os._exit`) breaks the pool: the items in flight are run again one at a time in a fresh pool, so
only the item that kills its worker alone is recorded (`worker_crashed`) and the rest go on.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.library.process_guard import exit_with_owner

# forkserver (spawn where there is no fork): children never inherit the owner's threads, locks or open catalog
# connection (a Dagster or Celery process has all three), and start faster than spawned interpreters.
START_METHOD = "forkserver" if os.name == "posix" else "spawn"
START_TIMEOUT_S = 120.0
WORKER_CRASHED = "worker_crashed"
WORKER_ERROR = "worker_error"


@dataclass(frozen=True)
class WorkerFailure:
    """Why an item has no result: `reason` is WORKER_CRASHED or WORKER_ERROR, `detail` says what happened."""

    reason: str
    detail: str


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def process_pool(workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool with the project's start method whose children exit with the process that made it."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(START_METHOD),
                               initializer=_start_child, initargs=(os.getpid(), initializer, initargs))


def pool_map(func: Callable[[Any], Any], items: Sequence[Any], *, workers: int | None = None,
             min_items: int = 2, chunk_size: int = 1, initializer: Callable[..., None] | None = None,
             initargs: tuple = (), before_chunk: Callable[[list[Any]], None] | None = None,
             ) -> Iterator[tuple[int, Any]]:
    """Yield (index into `items`, func(item) or WorkerFailure) in completion order.

    `before_chunk(items)` runs where a chunk's items are about to run (a hint such as announcing the reads they
    will do); what it raises is ignored.

    Runs in this process when there is one worker or fewer than `min_items` items (a pool's start costs more
    than it saves), or when no pool can start here; `initializer(*initargs)` then runs here once."""
    workers = workers or default_workers()
    indexed = list(enumerate(items))
    if workers <= 1 or len(indexed) < min_items:
        yield from _in_process(func, indexed, initializer, initargs, chunk_size, before_chunk)
        return
    chunks = deque(indexed[i:i + chunk_size] for i in range(0, len(indexed), chunk_size))
    alone: deque[list[tuple[int, Any]]] = deque()  # items in flight when a worker died: each runs by itself
    while chunks or alone:
        isolating = not chunks
        queue = alone if isolating else chunks
        size = 1 if isolating else min(workers, len(queue))
        with _closing(process_pool(size, initializer, initargs)) as pool:
            if not _starts(pool):  # e.g. a daemonic parent may not have children: do the work here
                rest = [item for chunk in (*chunks, *alone) for item in chunk]
                yield from _in_process(func, rest, initializer, initargs, chunk_size, before_chunk)
                return
            # two chunks per worker keep every worker fed while one result travels back
            in_flight = yield from _drain(pool, func, queue, 1 if isolating else 2 * size, before_chunk)
        if in_flight is None:
            continue
        if isolating:
            index, _ = in_flight[0][0]
            yield index, WorkerFailure(WORKER_CRASHED, "the worker process died on this item")
        else:
            alone.extend([item] for chunk in in_flight for item in chunk)


def _drain(pool: ProcessPoolExecutor, func: Callable, queue: deque, window: int, before_chunk: Callable | None):
    """Run the chunks of `queue` through `pool`, at most `window` at once, yielding results; returns None when
    all are done, or the chunks that were in flight when a worker died (the pool is then broken)."""
    running: dict[Future, list[tuple[int, Any]]] = {}
    while queue or running:
        while queue and len(running) < window:
            chunk = queue.popleft()
            try:
                running[pool.submit(_run_chunk, func, chunk, before_chunk)] = chunk
            except BrokenProcessPool:  # a worker died since the last results came back
                return [*running.values(), chunk]
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        broken = False
        for future in done:
            chunk = running.pop(future)
            try:
                yield from future.result()
            except BrokenProcessPool:
                running[future] = chunk
                broken = True
            except Exception as exc:  # the chunk's arguments or results could not cross the process boundary
                failure = WorkerFailure(WORKER_ERROR, f"{type(exc).__name__}: {exc}")
                yield from ((index, failure) for index, _ in chunk)
        if broken:
            return list(running.values())
    return None


@contextmanager
def _closing(pool: ProcessPoolExecutor) -> Iterator[ProcessPoolExecutor]:
    """Shut the pool down on exit; a broken pool's surviving workers are killed first, because CPython 3.11 may
    wait forever joining one that is still blocked on the call queue (seen: a test hung 8 minutes)."""
    try:
        yield pool
    finally:
        if getattr(pool, "_broken", False):
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


def _run_chunk(func: Callable, chunk: list[tuple[int, Any]], before_chunk: Callable | None = None,
               ) -> list[tuple[int, Any]]:
    if before_chunk is not None:
        try:
            before_chunk([item for _, item in chunk])
        except Exception:  # a hint never costs the work
            pass
    return [(index, _call(func, item)) for index, item in chunk]


def _call(func: Callable, item: Any) -> Any:
    try:
        return func(item)
    except Exception as exc:  # one bad item never costs the others
        return WorkerFailure(WORKER_ERROR, f"{type(exc).__name__}: {exc}")


def _in_process(func: Callable, indexed: list[tuple[int, Any]], initializer: Callable[..., None] | None,
                initargs: tuple, chunk_size: int = 1, before_chunk: Callable | None = None,
                ) -> Iterator[tuple[int, Any]]:
    if initializer is not None:
        initializer(*initargs)
    step = max(1, chunk_size)
    for start in range(0, len(indexed), step):
        yield from _run_chunk(func, indexed[start:start + step], before_chunk)


def _starts(pool: ProcessPoolExecutor) -> bool:
    """A trivial task tells a pool that cannot start apart from an item that crashes a worker."""
    try:
        pool.submit(os.getpid).result(timeout=START_TIMEOUT_S)
        return True
    except Exception:
        return False


def _start_child(owner_pid: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    exit_with_owner(owner_pid)
    if initializer is not None:
        initializer(*initargs)
