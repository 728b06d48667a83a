"""Process-pool children that die with the process that owns the pool.

A pool's children block on its call queue, whose pipe they hold open among themselves: when the owner is killed
(a Celery pool child SIGKILLed mid-step) they would wait forever, holding their memory. Each child watches its
owner from a small thread and exits once the owner is gone.
"""

from __future__ import annotations

import os
import threading
import time

WATCH_INTERVAL_S = 1.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_gone(owner_pid: int, parent_pid: int) -> bool:
    if os.getppid() != parent_pid:  # re-parented: whoever started us is dead
        return True
    return not pid_alive(owner_pid)


def _watch(owner_pid: int, parent_pid: int) -> None:
    while not _owner_gone(owner_pid, parent_pid):
        time.sleep(WATCH_INTERVAL_S)
    os._exit(1)


def exit_with_owner(owner_pid: int) -> None:
    """Pool initializer: end this child (within about a second) once `owner_pid` or its own parent is gone."""
    threading.Thread(target=_watch, args=(owner_pid, os.getppid()), name="exit-with-owner", daemon=True).start()
