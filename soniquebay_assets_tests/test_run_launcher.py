"""The run launcher's health check: a run's process that is gone (or a reused pid) is reported failed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from dagster import DagsterRunStatus, instance_for_test

from soniquebay_assets.dagster_defs.internals import EngineEventData, WorkerStatus
from soniquebay_assets.dagster_defs.run_launcher import LAUNCH_HOST_TAG, MonitoredRunLauncher, process_alive

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
    import socket

    from soniquebay_assets.dagster_defs.definitions import defs

    job = defs.get_repository_def().get_job("deferred_retry_job")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with instance_for_test(overrides={"run_launcher": {
            "module": "soniquebay_assets.dagster_defs.run_launcher", "class": "MonitoredRunLauncher"}}) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, MonitoredRunLauncher) and launcher.supports_check_run_worker_health
        here = instance.create_run_for_job(job_def=job, status=DagsterRunStatus.STARTED,
                                           tags={LAUNCH_HOST_TAG: socket.gethostname()})
        elsewhere = instance.create_run_for_job(job_def=job, status=DagsterRunStatus.STARTED,
                                                tags={LAUNCH_HOST_TAG: "another-host"})
        assert launcher.check_run_worker_health(here).status == WorkerStatus.RUNNING  # no pid reported yet
        for run in (here, elsewhere):
            instance.report_engine_event(f"Started process for run (pid: {gone.pid}).", run,
                                         EngineEventData.in_process(gone.pid))
        result = launcher.check_run_worker_health(instance.get_run_by_id(here.run_id))
        assert result.status == WorkerStatus.FAILED and str(gone.pid) in result.msg
        # launched on another host (or by the CLI): this host cannot tell, so it never fails it
        assert launcher.check_run_worker_health(instance.get_run_by_id(elsewhere.run_id)).status == WorkerStatus.RUNNING
