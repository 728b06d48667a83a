"""Process-pool children end with the process that owns the pool, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from soniquebay_assets_tests.proc_tree import (
    cmdline,
    live_tree_when,
    survivors_of_killed_owner,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")

OWNER = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from soniquebay_assets.library.process_guard import exit_with_owner

    def busy(_):
        time.sleep(600)

    if __name__ == "__main__":
        method = sys.argv[1]
        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method),
                                   initializer=exit_with_owner, initargs=(os.getpid(),))
        futures = [pool.submit(busy, i) for i in range(2)]
        print("ready", flush=True)
        time.sleep(600)
""")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pool_children_die_with_their_sigkilled_owner(tmp_path, method):
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        # the pool's two workers (under the owner, or under its forkserver) are busy
        tree = live_tree_when(owner.pid, lambda tree: sum("multiprocessing" in cmdline(p) for p in tree) >= 2)
        assert tree, "the pool started no process"
        left = survivors_of_killed_owner(owner, tree)
        assert not left, f"processes of the killed owner still alive: {left}"
    finally:
        try:
            os.killpg(owner.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
