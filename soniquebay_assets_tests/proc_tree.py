"""The process tree under a pid, read from /proc (Linux): what a killed process left alive."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0]


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] != "Z":
                tree.setdefault(stat[0], []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def parent_of(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[0] if stat is not None else None


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def live_tree_when(pid: int, ready, timeout_s: float = 60.0) -> list[int]:
    """The live descendants of `pid` as soon as `ready(tree)` holds, or as they are at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        tree = [p for p in descendants(pid) if alive(p)]
        if ready(tree) or time.monotonic() >= deadline:
            return tree
        time.sleep(0.2)


def survivors_of_killed_owner(owner: subprocess.Popen, tree: list[int], wait_s: float = 15.0) -> list[int]:
    """SIGKILL `owner`, then give the processes of `tree` `wait_s` to end; the ones still alive."""
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=10)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.2)
    return [p for p in tree if alive(p)]
