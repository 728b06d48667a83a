"""The Celery settings both sides of a Celery run agree on: the executor that submits steps (in the run process)
and the workers that run them (`celery_app.py` builds the worker app from the same `app_args()`): broker, backend,
acknowledgement and redelivery. Building an app here hooks nothing: signals belong to the worker alone."""

from __future__ import annotations

from typing import Any

from soniquebay_assets import settings
from soniquebay_assets.dagster_defs.internals import celery_default_config, celery_make_app


def config_source(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Celery settings: late acks + reject on worker loss so a SIGKILLed step is redelivered, not lost."""
    _, _, broker_transport_options = celery_default_config()
    config: dict[str, Any] = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # per-worker prefetch is given on the worker command line from queues.PREFETCH_BY_QUEUE
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            **broker_transport_options,
            # Redis redelivers a task whose worker stopped renewing it (celery_app.DeliveryHeartbeat) after this
            # many seconds; every worker sweeps for such tasks every 10 s (kombu's default: every 100 s)
            "visibility_timeout": settings.celery_visibility_timeout_s(),
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        },
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_track_started": True,
        "result_expires": 7 * 24 * 3600,
    }
    config.update(overrides or {})
    return config


def app_args(broker: str | None = None, backend: str | None = None,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Arguments for dagster-celery's make_app, shared by workers and the executor."""
    default_config, dict_wrapper, _ = celery_default_config()
    return {
        "broker": broker or settings.broker_url(),
        "backend": backend or settings.result_backend_url(),
        "include": [],
        "config_source": dict_wrapper(dict(default_config, **config_source(overrides))),
    }


def make_celery_app(broker: str | None = None, backend: str | None = None) -> Any:
    """A Celery app with these settings: to inspect workers and queues, or for the worker to register its task on."""
    return celery_make_app()(app_args(broker, backend))
