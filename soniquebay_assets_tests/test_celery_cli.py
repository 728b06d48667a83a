"""`soniquebay worker` argument checks and command line, `soniquebay status --json` shape (no broker needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from soniquebay_assets import queues
from soniquebay_assets.cli import worker_cmds


def test_parse_queues_validates_against_queues_py():
    assert worker_cmds.parse_queues("worker_scan, worker_extract,worker_scan") == ["worker_scan", "worker_extract"]
    with pytest.raises(ValueError, match="unknown queue.*worker_scann"):
        worker_cmds.parse_queues("worker_scann")
    with pytest.raises(ValueError, match="at most 4"):
        worker_cmds.parse_queues(",".join(queues.ALL_QUEUES[:5]))
    with pytest.raises(ValueError, match="empty"):
        worker_cmds.parse_queues(" , ")


def test_prefetch_is_the_smallest_of_the_workers_queues():
    assert worker_cmds.prefetch_for([queues.WORKER_SCAN]) == 4
    assert worker_cmds.prefetch_for([queues.WORKER_SCAN, queues.WORKER_EXTRACT, queues.WORKER_INSERT_BULK]) == 2
    assert worker_cmds.prefetch_for([queues.WORKER_METADATA, queues.WORKER_VECTOR]) == 1


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "soniquebay_assets.cli.main", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_worker_command_line(tmp_path):
    done = _cli("worker", "--queues", "worker_scan,worker_extract,worker_insert_bulk", "--concurrency", "4",
                "--data-dir", str(tmp_path / "data"), "--print-command")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # one Celery process per prefetch value, so each queue keeps its own: scan 4, extract and insert 2
    commands = out["commands"]
    assert len(commands) == 2
    by_queues = {c[c.index("-Q") + 1]: c for c in commands}
    assert set(by_queues) == {"worker_scan", "worker_extract,worker_insert_bulk"}
    for queue_list, command in by_queues.items():
        assert command[command.index("-A") + 1] == "soniquebay_assets.celery_app"
        assert command.count("-Q") == 1  # one comma list: repeated -Q would keep only the last queue
        assert command[command.index("--prefetch-multiplier") + 1] == str(
            queues.PREFETCH_BY_QUEUE[queue_list.split(",")[0]])
        assert command[command.index("--concurrency") + 1] == "4"
    assert len({c[c.index("-n") + 1] for c in commands}) == 2  # distinct Celery node names
    assert out["env"]["DAGSTER_HOME"] == str(tmp_path / "data" / "dagster_home")
    assert (tmp_path / "data" / "dagster_home" / "dagster.yaml").is_file()


def test_worker_autoscale_and_single_prefetch_group(tmp_path):
    done = _cli("worker", "--queues", "worker_deferred", "--autoscale", "3,1", "--data-dir", str(tmp_path),
                "--print-command")
    assert done.returncode == 0, done.stderr
    [command] = json.loads(done.stdout)["commands"]
    assert command[command.index("--autoscale") + 1] == "3,1" and "--concurrency" not in command
    assert command[command.index("-n") + 1].startswith("worker_deferred@")
    for bad in ("3", "1,3", "a,b"):
        done = _cli("worker", "--queues", "worker_deferred", "--autoscale", bad, "--data-dir", str(tmp_path),
                    "--print-command")
        assert done.returncode == 2 and "--autoscale" in done.stderr


def test_worker_refuses_bad_queue_lists(tmp_path):
    five = ",".join(queues.ALL_QUEUES[:5])
    done = _cli("worker", "--queues", five, "--data-dir", str(tmp_path), "--print-command")
    assert done.returncode == 2 and "at most 4" in done.stderr
    done = _cli("worker", "--queues", "scan", "--data-dir", str(tmp_path), "--print-command")
    assert done.returncode == 2 and "unknown queue(s) scan" in done.stderr


@pytest.mark.slow
def test_status_json_reports_queues_assets_and_deferred(tmp_path):
    from soniquebay_assets.catalog import deferred
    from soniquebay_assets.catalog.db import open_catalog

    data = tmp_path / "data"
    conn = open_catalog(data / "catalog.db")
    deferred.enqueue(conn, "vectors", "track", [(1, "00"), (2, "01")])
    conn.close()
    done = _cli("status", "--json", "--data-dir", str(data),
                env_extra={"SONIQUEBAY_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["queues"]) == set(queues.ALL_QUEUES)
    assert report["queues"]["worker_scan"]["assets"] == ["file_inventory"]
    assert report["queues"]["worker_scan"]["depth"] is None and "unreachable" in report["broker_problem"]
    assert report["assets"]["catalog_entities"]["queue"] == queues.WORKER_INSERT_BULK
    assert report["deferred"]["vectors"]["pending"] == 2
    assert report["deferred"]["vectors"]["oldest_pending_age_s"] is not None


@pytest.mark.slow
def test_the_submitting_side_builds_no_worker_app():
    """A run with the Celery executor (and `soniquebay status`) use the shared Celery settings; the worker app, with
    its signal hooks, is built by the worker alone (then, in the same process, they are there)."""
    probe = (
        "import sys\n"
        "from celery import signals\n"
        "from soniquebay_assets.dagster_defs.celery_config import make_celery_app\n"
        "from soniquebay_assets.dagster_defs.executor import celery_executor_from_config\n"
        "executor = celery_executor_from_config({'broker': 'redis://127.0.0.1:1/0'})\n"
        "app = make_celery_app('redis://127.0.0.1:1/0')\n"
        "def hooks():\n"
        "    return [s for s in ('worker_process_init', 'task_prerun', 'task_postrun', 'after_setup_logger')\n"
        "            if getattr(signals, s).receivers]\n"
        "print('soniquebay_assets.celery_app' in sys.modules, len(hooks()), app.conf.task_acks_late,\n"
        "      executor.app_args()['broker'] == 'redis://127.0.0.1:1/0')\n"
        "import soniquebay_assets.celery_app\n"
        "print(len(hooks()))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "0", "True", "True", "4"]


def test_executor_choice_comes_from_the_environment(monkeypatch):
    from soniquebay_assets import settings
    from soniquebay_assets.dagster_defs.executor import build_executor

    monkeypatch.delenv("SONIQUEBAY_EXECUTOR", raising=False)
    assert settings.executor_choice() == "in_process"
    assert build_executor().config_schema.default_value == {"in_process": {}}
    monkeypatch.setenv("SONIQUEBAY_EXECUTOR", "celery")
    assert build_executor().config_schema.default_value == {"celery": {}}
    monkeypatch.setenv("SONIQUEBAY_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="SONIQUEBAY_EXECUTOR"):
        settings.executor_choice()
    monkeypatch.delenv("SONIQUEBAY_BROKER_URL", raising=False)
    assert settings.broker_url() == "redis://127.0.0.1:6379/0"


def test_definitions_jobs_run_in_process_by_default(data_dir, monkeypatch):
    """A job launched as the UI would (reconstructable, persistent instance, no executor config) stays in-process."""
    from dagster import execute_job, instance_for_test
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    monkeypatch.delenv("SONIQUEBAY_EXECUTOR", raising=False)
    repo = ReconstructableRepository.for_module("soniquebay_assets.dagster_defs.definitions", "defs")
    with instance_for_test() as instance:
        with execute_job(repo.get_reconstructable_job("deferred_retry_job"), instance=instance) as result:
            assert result.success
            assert result.output_for_node("retry_deferred_work") == {
                "retried": 0, "reclaimed": 0, "dead": 0, "ended_claims": {"done": 0, "released": 0, "dead": 0}}
            messages = [e.message or "" for e in result.all_events]
    assert any("in process" in m for m in messages), messages
    assert not any("Celery" in m for m in messages)
