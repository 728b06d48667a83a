"""Dagster's default run launcher plus a run-worker health check, so run monitoring can end orphaned runs.

The default launcher starts each run as a process of the daemon's code server and cannot say whether that
process still lives: a run whose process died with a killed daemon stays STARTED forever. This launcher tags each
run with the launching host and checks, on that host, that the process the run reported ("Started process for
run (pid: N)") is alive and is that run's worker; the monitoring daemon then marks a dead run failed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import DagsterEventType

from soniquebay_assets.dagster_defs.internals import (
    CheckRunHealthResult,
    DagsterRun,
    DefaultRunLauncher,
    LaunchRunContext,
    WorkerStatus,
)

LAUNCH_HOST_TAG = "soniquebay/launch_host"


def process_alive(pid: int, marker: str | None = None) -> bool:
    """Is `pid` alive (and, where /proc exists, does its command line mention `marker`)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if marker and cmdline.exists():
        try:
            raw = cmdline.read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        # a zombie is a dead worker its parent has not reaped yet; a reused pid runs something else
        return state != "Z" and marker.encode() in raw
    return True


class MonitoredRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers can be health-checked by Dagster's run monitoring."""

    def launch_run(self, context: LaunchRunContext) -> None:
        self._instance.add_run_tags(context.dagster_run.run_id, {LAUNCH_HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if run.tags.get(LAUNCH_HOST_TAG) != socket.gethostname():
            # launched elsewhere (a CLI run, another host): nothing here can tell, so never fail it
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run not launched from this host: not checked")
        pid = self._run_worker_pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker has not reported its process yet")
        # the code server starts run workers with multiprocessing (spawn): its command line says so
        if process_alive(pid, marker="multiprocessing"):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED,
                                    f"run worker process {pid} on {socket.gethostname()} is gone")

    def _run_worker_pid(self, run: DagsterRun) -> int | None:
        records = self._instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT).records
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None or not (event.message or "").startswith("Started process for run"):
                continue
            pid = event.engine_event_data.metadata.get("pid") if event.engine_event_data else None
            value = getattr(pid, "value", pid)
            if value is not None and str(value).isdigit():
                return int(value)
        return None
