"""Dagster's default run launcher plus a run-worker health check, so run monitoring can end orphaned runs.

The default launcher starts each run as a process of the daemon's code server and cannot say whether that
process still lives: a run whose process died with a killed daemon stays STARTED forever. This launcher tags each
run with the launching host and checks, on that host, that the process the run reported ("Started process for
run (pid: N)") is alive and is that run's worker; the monitoring daemon then marks a dead run failed. A run
launched on another host is failed once that host's launcher stopped checking in (it records when it last did
in the instance): a daemon recreated under a new host name (a new container) still ends its predecessor's runs.
"""

from __future__ import annotations

import os
import time
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
# A launching host that has not checked in for this long is gone, and its run processes with it: its daemon
# checks in at every run-monitoring pass (poll_interval_seconds, 20 s in docker/dagster.yaml) while it has runs.
LAUNCHER_GONE_AFTER_S = 120.0
CHECK_IN_EVERY_S = 10.0


def check_in_key(host: str) -> str:
    return f"soniquebay/launcher_checked_in/{host}"


def this_host() -> str:
    """The launching host's name: SONIQUEBAY_HOST_LABEL, else the host name."""
    from soniquebay_assets.settings import host_label

    return host_label()


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

    _checked_in_at = 0.0

    def launch_run(self, context: LaunchRunContext) -> None:
        self.check_in(force=True)
        self._instance.add_run_tags(context.dagster_run.run_id, {LAUNCH_HOST_TAG: this_host()})
        super().launch_run(context)

    def check_in(self, *, force: bool = False) -> None:
        """Record in the instance that this host's launcher is alive (at most every CHECK_IN_EVERY_S)."""
        now = time.time()
        if force or now - self._checked_in_at >= CHECK_IN_EVERY_S:
            self._instance.run_storage.set_cursor_values({check_in_key(this_host()): repr(now)})
            self._checked_in_at = now

    def seconds_since_check_in(self, host: str) -> float | None:
        value = self._instance.run_storage.get_cursor_values({check_in_key(host)}).get(check_in_key(host))
        return None if value is None else time.time() - float(value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        self.check_in()
        launched_on = run.tags.get(LAUNCH_HOST_TAG)
        if launched_on is None:  # a CLI run: nothing here can tell, so never fail it
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run not launched by a daemon: not checked")
        if launched_on != this_host():
            silent = self.seconds_since_check_in(launched_on)
            if silent is not None and silent > LAUNCHER_GONE_AFTER_S:
                return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process on {launched_on} is gone "
                                            f"with its host (its launcher last checked in {silent:.0f} s ago)")
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run launched on {launched_on}, which checks it")
        pid = self._run_worker_pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker has not reported its process yet")
        # the code server starts run workers with multiprocessing (spawn): its command line says so
        if process_alive(pid, marker="multiprocessing"):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED,
                                    f"run worker process {pid} on {this_host()} is gone")

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
