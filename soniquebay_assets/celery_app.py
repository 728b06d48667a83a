"""The Celery app workers load with `-A soniquebay_assets.celery_app`: dagster-celery's step task on an app with the
settings of dagster_defs/celery_config.py (the executor submits with the same), plus what only a worker does:
pool children that may start process pools, one log line per step, quiet Celery loggers.
"""

from __future__ import annotations

from typing import Any

from soniquebay_assets.dagster_defs.celery_config import make_celery_app
from soniquebay_assets.dagster_defs.internals import celery_create_task
from soniquebay_assets.logging_prefixes import queue_prefix


def allow_process_pools_in_pool_children(**_: Any) -> None:
    """Celery's prefork children are daemonic (Python refuses to start processes from them) and carry billiard's
    authkey type (the stdlib refuses to pickle it for forkserver/spawn). The pipeline's steps run process pools
    (tag extraction, audio analysis), so each pool child gets a plain, non-daemonic process config."""
    import multiprocessing
    import os
    from multiprocessing.process import AuthenticationString

    config = multiprocessing.current_process()._config
    config["daemon"] = False
    config["authkey"] = AuthenticationString(bytes(config.get("authkey") or os.urandom(32)))


_STEP_LOG = "soniquebay.worker"
_started_at: dict[str, tuple[float, str]] = {}


def _step_label(task: Any, args: Any, kwargs: Any) -> tuple[str, str]:
    """(`[WORKER_*]` prefix of the queue the task came from, "step KEY of run ID") for one execute_plan task."""
    queue = ((getattr(task.request, "delivery_info", None) or {}).get("routing_key")) or "?"
    prefix = queue_prefix(queue)
    # dagster-celery sends the step as keyword arguments (serdes-packed ExecuteStepArgs)
    packed = (kwargs or {}).get("execute_step_args_packed") or (args[0] if args else {})
    if not isinstance(packed, dict):
        packed = {}
    steps = packed.get("step_keys_to_execute") or ["?"]
    run_id = packed.get("pipeline_run_id") or packed.get("run_id") or "?"
    return prefix, f"step {', '.join(steps)} of run {str(run_id)[:8]}"


def log_step_start(task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    """One line when a step starts on this worker."""
    import logging
    import time

    prefix, label = _step_label(task, args, kwargs)
    _started_at[task_id] = (time.monotonic(), f"{prefix} {label}")
    logging.getLogger(_STEP_LOG).info(f"{prefix} {label} started")


def log_step_end(task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, retval: Any = None,
                 state: str = "", **_: Any) -> None:
    """One line when it ends: success or failure (from the step events it returns) and seconds taken."""
    import logging
    import time

    began, label = _started_at.pop(task_id, (None, None))
    if label is None:
        prefix, rest = _step_label(task, args, kwargs)
        label = f"{prefix} {rest}"
    failed = state != "SUCCESS" or "STEP_FAILURE" in str(retval)[-20000:]
    took = f" in {time.monotonic() - began:.1f}s" if began is not None else ""
    logging.getLogger(_STEP_LOG).info(f"{label} {'failed' if failed else 'succeeded'}{took}")


def quiet_celery_loggers(**_: Any) -> None:
    """Celery logs every task received and its whole result (the step's serialized events): keep the
    concise step lines instead."""
    import logging

    for name in ("celery.app.trace", "celery.worker.strategy", "soniquebay_assets", "alembic", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ------------------------------------------------------------------ deliveries held stay invisible while worked on
# Redis hands an unacknowledged task to another worker once it has been out `visibility_timeout` seconds,
# whether or not its worker still works on it: kombu scores each delivery by when it went out. The shipped
# timeout is short (a lost worker host costs minutes, not an hour), so this worker re-scores the deliveries it
# holds every few seconds: only the deliveries of a worker that stopped doing so (gone, cut off) come back.


class DeliveryHeartbeat:
    """A thread in the worker's main process (which holds the deliveries; pool children run them) that keeps
    the deliveries it holds fresh in Redis's unacked index."""

    def __init__(self, app: Any, every_s: float) -> None:
        import threading

        self.app, self.every_s = app, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soniquebay-delivery-heartbeat", daemon=True)
        self.beats = 0

    def start(self) -> DeliveryHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import logging

        log = logging.getLogger(_STEP_LOG)
        connection = None
        while not self._stop.wait(self.every_s):
            try:
                if connection is None:
                    connection = self.app.connection_for_write()
                self.beat(connection.default_channel)
            except Exception as exc:  # noqa: BLE001 - a broker hiccup: the next beat tries again
                log.warning(f"delivery heartbeat: {type(exc).__name__}: {exc}")
                if connection is not None:
                    connection.release()
                connection = None

    def beat(self, channel: Any) -> int:
        """Re-score this worker's deliveries as just handed out; returns how many it holds."""
        import time

        from celery.worker import state

        tags = {getattr(request.message, "delivery_tag", None) for request in list(state.reserved_requests)}
        tags.discard(None)
        if tags:
            now = time.time()
            # XX: only deliveries still unacknowledged; one acked meanwhile must not come back
            channel.client.zadd(channel.unacked_index_key, dict.fromkeys(tags, now), xx=True)
        self.beats += 1
        return len(tags)


def start_delivery_heartbeat(sender: Any = None, **_: Any) -> None:
    """On worker start, with a Redis broker: beat at a sixth of the visibility timeout."""
    from soniquebay_assets import settings

    worker_app = getattr(sender, "app", None) or app
    if not str(worker_app.conf.broker_url or "").startswith(("redis://", "rediss://", "redis+socket://")):
        return
    global _heartbeat
    _heartbeat = DeliveryHeartbeat(worker_app, max(1.0, settings.celery_visibility_timeout_s() / 6)).start()


_heartbeat: DeliveryHeartbeat | None = None


def _worker_app() -> Any:
    from celery.signals import (
        after_setup_logger,
        task_postrun,
        task_prerun,
        worker_process_init,
        worker_ready,
    )

    worker_process_init.connect(allow_process_pools_in_pool_children, weak=False)
    after_setup_logger.connect(quiet_celery_loggers, weak=False)
    task_prerun.connect(log_step_start, weak=False)
    task_postrun.connect(log_step_end, weak=False)
    worker_ready.connect(start_delivery_heartbeat, weak=False)
    worker_app = make_celery_app()
    celery_create_task()(worker_app)  # registers "execute_plan", the task every step is sent as
    return worker_app


app = _worker_app()
