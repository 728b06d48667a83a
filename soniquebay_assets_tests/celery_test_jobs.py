"""Jobs for the Celery tests, rebuilt by the worker processes (so this module must import cleanly there).

`PausingCatalogResource` is the worker-side marker of the SIGKILL test: the first time the chosen step opens the
catalog it writes its PID to a file and sleeps, giving the test a process to kill mid-step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dagster import InitResourceContext
from pydantic import PrivateAttr

from soniquebay_assets.dagster_defs.internals import build_reconstructable_job
from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.dagster_defs.scan_runs import group_job

PAUSE_SECONDS = 120


class PausingCatalogResource(CatalogResource):
    """CatalogResource that stalls once inside `pause_step` (the step key is read at resource setup)."""

    pause_step: str = ""
    pause_dir: str = ""
    pause_seconds: float = PAUSE_SECONDS
    _step_key: str = PrivateAttr(default="")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        metadata = context.log.metadata if context.log is not None else {}
        self._step_key = metadata.get("step_key") or ""

    def connect(self) -> Any:
        step_key = self._step_key
        if self.pause_step and step_key == self.pause_step:
            marker = Path(self.pause_dir) / f"{step_key}.pid"
            try:
                with open(marker, "x", encoding="utf-8") as handle:  # only the first attempt pauses
                    handle.write(str(os.getpid()))
            except FileExistsError:
                pass
            else:
                time.sleep(self.pause_seconds)
        return super().connect()


def pausing_group_job(groups):
    return group_job(groups, resources={"catalog": PausingCatalogResource(), "library": LibraryResource()})


def reconstructable_pausing_job(groups):
    return build_reconstructable_job(__name__, "pausing_group_job", reconstructable_args=(tuple(groups),))
