"""The run launcher's health check: a run's process that is gone (or a reused pid) is reported failed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from dagster import DagsterRunStatus, instance_for_test

from soniquebay_assets.dagster_defs.deferred_sensors import worker_died
from soniquebay_assets.dagster_defs.internals import EngineEventData, WorkerStatus
from soniquebay_assets.dagster_defs.run_launcher import (
    LAUNCH_HOST_TAG,
    LAUNCHER_GONE_AFTER_S,
    MonitoredRunLauncher,
    check_in_key,
    process_alive,
    this_host,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="checks processes through /proc")


def test_process_alive_checks_the_command_line_marker():
    child = subprocess.Popen([sys.executable, "-c", "import time, multiprocessing; print(1, flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # exec'd and running its own command line
        assert process_alive(child.pid, marker="multiprocessing")
        assert not process_alive(child.pid, marker="execute_step")  # a reused pid runs something else
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, marker="multiprocessing")


def test_health_check_fails_a_run_whose_process_is_gone():
    from soniquebay_assets.dagster_defs.definitions import defs

    job = defs.get_repository_def().get_job("deferred_retry_job")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with instance_for_test(overrides={"run_launcher": {
            "module": "soniquebay_assets.dagster_defs.run_launcher", "class": "MonitoredRunLauncher"}}) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, MonitoredRunLauncher) and launcher.supports_check_run_worker_health
        here = instance.create_run_for_job(job_def=job, status=DagsterRunStatus.STARTED,
                                           tags={LAUNCH_HOST_TAG: this_host()})
        launcher.check_in(force=True)  # "another-host" below is alive: it checked in just now
        instance.run_storage.set_cursor_values({check_in_key("another-host"): repr(time.time())})
        elsewhere = instance.create_run_for_job(job_def=job, status=DagsterRunStatus.STARTED,
                                                tags={LAUNCH_HOST_TAG: "another-host"})
        assert launcher.check_run_worker_health(here).status == WorkerStatus.RUNNING  # no pid reported yet
        for run in (here, elsewhere):
            instance.report_engine_event(f"Started process for run (pid: {gone.pid}).", run,
                                         EngineEventData.in_process(gone.pid))
        result = launcher.check_run_worker_health(instance.get_run_by_id(here.run_id))
        assert result.status == WorkerStatus.FAILED and str(gone.pid) in result.msg
        # launched on another host that still checks in: that host checks it
        assert launcher.check_run_worker_health(instance.get_run_by_id(elsewhere.run_id)).status == WorkerStatus.RUNNING


def test_runs_of_a_launcher_host_that_stopped_checking_in_are_failed_from_another_host(monkeypatch):
    """A daemon recreated under a new host name (a new container) ends the runs its predecessor left."""
    from soniquebay_assets.dagster_defs.definitions import defs

    job = defs.get_repository_def().get_job("deferred_retry_job")
    with instance_for_test(overrides={"run_launcher": {
            "module": "soniquebay_assets.dagster_defs.run_launcher", "class": "MonitoredRunLauncher"}}) as instance:
        monkeypatch.setenv("SONIQUEBAY_HOST_LABEL", "daemon-before")
        before = instance.run_launcher
        before.check_in(force=True)
        orphan = instance.create_run_for_job(job_def=job, status=DagsterRunStatus.STARTED,
                                             tags={LAUNCH_HOST_TAG: "daemon-before"})
        cli_run = instance.create_run_for_job(job_def=job, status=DagsterRunStatus.STARTED)
        monkeypatch.setenv("SONIQUEBAY_HOST_LABEL", "daemon-after")  # the same daemon, recreated
        after = MonitoredRunLauncher()
        after.register_instance(instance)
        # the predecessor checked in just now: it may still be alive, so its run is left to it
        assert after.check_run_worker_health(orphan).status == WorkerStatus.RUNNING
        silent = time.time() - LAUNCHER_GONE_AFTER_S - 5
        instance.run_storage.set_cursor_values({check_in_key("daemon-before"): repr(silent)})
        result = after.check_run_worker_health(orphan)
        assert result.status == WorkerStatus.FAILED and "daemon-before" in result.msg
        assert worker_died(f"Detected run worker status {result}")  # its deferred items are released at once
        assert after.check_run_worker_health(cli_run).status == WorkerStatus.RUNNING  # no launcher: not judged
        assert float(instance.run_storage.get_cursor_values({check_in_key("daemon-after")})[
            check_in_key("daemon-after")]) > silent  # the new daemon checks in as it monitors
