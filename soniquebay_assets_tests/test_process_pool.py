"""The one process-pool helper: results by index, a raising or dying child costs only its own item, children
exit with their owner, and a process that may not have children does the work itself."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from soniquebay_assets.library.process_pool import WORKER_CRASHED, WORKER_ERROR, WorkerFailure, pool_map
from soniquebay_assets_tests import pool_jobs
from soniquebay_assets_tests.proc_tree import (
    live_tree_when,
    survivors_of_killed_owner,
)


def _results(func, items, **options) -> dict[int, object]:
    out: dict[int, object] = {}
    for index, result in pool_map(func, items, **options):
        assert index not in out, f"item {index} reported twice"
        out[index] = result
    return out


@pytest.mark.parametrize("workers, chunk_size", [(1, 1), (2, 1), (2, 7)])
def test_every_item_comes_back_under_its_index(workers, chunk_size):
    items = list(range(40, 80))
    results = _results(pool_jobs.double, items, workers=workers, chunk_size=chunk_size)
    assert results == {i: item * 2 for i, item in enumerate(items)}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_raising_item_is_an_error_and_the_rest_go_on(workers):
    results = _results(pool_jobs.double_or_raise, list(range(30)), workers=workers, chunk_size=4)
    failed = {i: r for i, r in results.items() if isinstance(r, WorkerFailure)}
    assert sorted(failed) == [5, 15, 25]
    assert all(r.reason == WORKER_ERROR and r.detail == f"ValueError: no double for {i}" for i, r in failed.items())
    assert {i: r for i, r in results.items() if i not in failed} == {i: i * 2 for i in range(30) if i not in failed}


@pytest.mark.parametrize("func, culprits", [(pool_jobs.double_or_exit, [13, 26, 39]),
                                            (pool_jobs.double_or_sigkill, [17, 34])])
def test_an_item_that_kills_its_worker_is_recorded_and_the_rest_go_on(func, culprits):
    results = _results(func, list(range(45)), workers=2, chunk_size=5)
    assert sorted(results) == list(range(45))
    failed = {i: r for i, r in results.items() if isinstance(r, WorkerFailure)}
    assert sorted(failed) == culprits  # only the items that die alone, not their chunk or pool mates
    assert {r.reason for r in failed.values()} == {WORKER_CRASHED}
    assert all("died" in r.detail for r in failed.values())
    assert {i: r for i, r in results.items() if i not in failed} == {i: i * 2 for i in range(45) if i not in failed}


def test_work_runs_in_pool_children_above_the_threshold_and_here_below_it():
    pooled = set(_results(pool_jobs.report_pid, list(range(8)), workers=2, min_items=8).values())
    assert os.getpid() not in pooled and 1 <= len(pooled) <= 2
    here = set(_results(pool_jobs.report_pid, list(range(7)), workers=2, min_items=8).values())
    assert here == {os.getpid()}


def _map_in_daemon(queue) -> None:
    queue.put(dict(pool_map(pool_jobs.report_pid, list(range(6)), workers=2, min_items=1)))


def test_a_process_that_may_not_have_children_does_the_work_itself():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_map_in_daemon, args=(queue,), daemon=True)
    child.start()
    try:
        results = queue.get(timeout=120)
    finally:
        child.join(30)
    assert sorted(results) == list(range(6))
    assert set(results.values()) == {child.pid}


OWNER = textwrap.dedent("""
    import sys
    from soniquebay_assets.library.process_pool import pool_map
    from soniquebay_assets_tests.pool_jobs import sleep_long

    if __name__ == "__main__":
        print("ready", flush=True)
        for _ in pool_map(sleep_long, list(range(4)), workers=2, min_items=1):
            pass
""")


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
def test_pool_children_exit_with_their_sigkilled_owner(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        # the forkserver and the two busy workers under it
        tree = live_tree_when(owner.pid, lambda tree: len(tree) >= 3)
        assert len(tree) >= 3, f"the pool did not start its workers: {tree}"
        left = survivors_of_killed_owner(owner, tree)
        assert not left, f"processes of the killed owner still alive: {left}"
    finally:
        try:
            os.killpg(owner.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("workers", [1, 2])
def test_the_before_chunk_hook_sees_each_chunk_before_its_items_run(tmp_path, workers):
    items = [(number, str(tmp_path)) for number in range(100)]
    results = _results(pool_jobs.number_of, items, workers=workers, min_items=2, chunk_size=16,
                       before_chunk=pool_jobs.note_chunk)
    assert results == {i: i for i in range(100)}
    seen = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert seen == {f"chunk-{start}": ",".join(str(n) for n in range(start, min(start + 16, 100)))
                    for start in range(0, 100, 16)}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_before_chunk_hook_costs_no_item(workers):
    items = [(number, "") for number in range(40)]
    results = _results(pool_jobs.number_of, items, workers=workers, chunk_size=8, before_chunk=pool_jobs.refuse_chunk)
    assert results == {i: i for i in range(40)}
