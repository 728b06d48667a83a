"""`soniquebay status` figures from a real instance: run-level failures and the deferred retry op count."""

from __future__ import annotations

import pytest
from dagster import DagsterEvent, DagsterEventType

from soniquebay_assets import queues
from soniquebay_assets.dagster_defs import monitoring, schedules
from soniquebay_assets.dagster_defs.definitions import all_assets, defs
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets_tests.scan_helpers import test_instance


def _report(instance):
    routes = {**monitoring.op_routes([schedules.deferred_retry_job]), **monitoring.asset_routes(all_assets())}
    stats = monitoring.step_stats(instance, planned_steps=monitoring.planned_steps_of(defs))
    return stats, monitoring.per_queue(routes, stats, {}, None)


@pytest.mark.slow
def test_status_counts_run_level_failures_and_the_retry_op(tmp_path, data_dir):
    scan_job = defs.get_repository_def().get_job("scan_job")
    with test_instance(tmp_path) as instance:
        assert schedules.deferred_retry_job.execute_in_process(
            instance=instance, resources={"catalog": CatalogResource(data_dir_path=str(data_dir))}).success
        # a run whose process died before any step began (run monitoring fails it): every planned step failed
        never_began = instance.create_run_for_job(job_def=scan_job)
        instance.report_run_failed(never_began)
        # a run that died inside its inventory step: that step failed, the steps after it never ran
        died_mid_step = instance.create_run_for_job(job_def=scan_job)
        instance.report_dagster_event(DagsterEvent(DagsterEventType.STEP_START.value, job_name=scan_job.name,
                                                   step_key="file_inventory"), died_mid_step.run_id)
        instance.report_run_failed(died_mid_step)
        stats, per_queue = _report(instance)
        assert monitoring.run_counts(instance) == {"success": 1, "failure": 2}
    assert stats["retry_deferred_work"]["succeeded"] == 1
    assert per_queue[queues.WORKER_DEFERRED]["succeeded"] == 1
    assert stats["file_inventory"]["failed"] == 2 and stats["raw_metadata"]["failed"] == 1
    assert stats["file_inventory"]["errors_by_type"] == {"run FAILURE, step unfinished": 2}
    assert per_queue[queues.WORKER_SCAN]["failed"] == 2 and per_queue[queues.WORKER_SCAN]["success_rate"] == 0.0
