"""Work items for the process-pool tests: module-level so pool children can import them."""

from __future__ import annotations

import os
import signal
import time


def double(item: int) -> int:
    return item * 2


def double_or_raise(item: int) -> int:
    if item % 10 == 5:
        raise ValueError(f"no double for {item}")
    return item * 2


def double_or_exit(item: int) -> int:
    """Items divisible by 13 end their worker with os._exit, as a native crash would."""
    if item and item % 13 == 0:
        os._exit(3)
    return item * 2


def double_or_sigkill(item: int) -> int:
    """Items divisible by 17 are SIGKILLed in their worker, as the OOM killer would."""
    if item and item % 17 == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 2


def sleep_long(_item: int) -> None:
    time.sleep(600)


def report_pid(_item: int) -> int:
    return os.getpid()


def note_chunk(items: list[tuple[int, str]]) -> None:
    """A before_chunk hook: leaves a file naming the chunk's items in the folder the items carry."""
    with open(os.path.join(items[0][1], f"chunk-{items[0][0]}"), "w") as handle:
        handle.write(",".join(str(number) for number, _ in items))


def refuse_chunk(_items: list) -> None:
    raise RuntimeError("a hint that fails")


def number_of(item: tuple[int, str]) -> int:
    return item[0]
