"""The executor: in-process by default, dagster-celery when SONIQUEBAY_EXECUTOR=celery or the run config says so.

The Celery side adds what dagster-celery lacks: before a step is sent, its queue must have a live consumer
(`inspect().active_queues()`), otherwise the run fails naming the queue instead of waiting forever; and a step
whose queue loses every consumer for `no_consumer_grace_s` while it waits fails the same way.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Iterable
from typing import Any

from dagster import Field, Noneable, Permissive, Selector, StringSource, executor

from soniquebay_assets import queues, settings
from soniquebay_assets.dagster_defs import celery_config
from soniquebay_assets.dagster_defs.internals import (
    IN_PROC_CONFIG,
    DagsterEvent,
    EngineEventData,
    RetryMode,
    _core_in_process_executor_creation,
    celery_execution_loop,
    celery_executor_class,
    celery_make_app,
    celery_submit_task,
    get_retries_config,
    multiple_process_executor_requirements,
)

DEFAULT_CELERY_QUEUE = "dagster"  # dagster-celery's queue for steps without a queue tag; nobody consumes it


class NoQueueConsumerError(Exception):
    """A step's Celery queue has no live worker: the run would otherwise wait forever."""


def celery_config_field() -> Field:
    return Field(
        {
            "broker": Field(Noneable(StringSource), is_required=False,
                            description="Celery broker URL (default: SONIQUEBAY_BROKER_URL or redis://127.0.0.1:6379/0)."),
            "backend": Field(Noneable(StringSource), is_required=False,
                             description="Celery result backend (default: SONIQUEBAY_RESULT_BACKEND or the broker)."),
            "include": Field([str], is_required=False, description="Modules every worker should import."),
            "config_source": Field(Noneable(Permissive()), is_required=False,
                                   description="Celery settings merged over ours (task_acks_late etc.)."),
            "retries": get_retries_config(),
            "consumer_check_timeout_s": Field(float, default_value=2.0,
                                              description="How long to wait for workers to answer inspect()."),
            "no_consumer_grace_s": Field(float, default_value=30.0,
                                         description="Fail a waiting step once its queue had no consumer this long."),
        },
        description="Send each step to its Celery queue (queues.py) through dagster-celery.",
    )


def _requirements(executor_config: dict) -> list:
    return multiple_process_executor_requirements() if "celery" in (executor_config or {}) else []


def build_executor(choice: str | None = None):
    """The executor for Definitions: the env choice is the default, the launchpad can select the other."""
    choice = choice or settings.executor_choice()
    default = {"celery": {}} if choice == "celery" else {"in_process": {}}

    @executor(
        name="soniquebay_executor",
        config_schema=Field(Selector({"in_process": IN_PROC_CONFIG, "celery": celery_config_field()}),
                            default_value=default),
        requirements=_requirements,
    )
    def soniquebay_executor(init_context):
        """In-process (default) or dagster-celery with per-queue routing and a no-consumer guard."""
        config = init_context.executor_config
        if "celery" in config:
            return celery_executor_from_config(config["celery"])
        return _core_in_process_executor_creation(config["in_process"])

    return soniquebay_executor


def celery_executor_from_config(config: dict):
    return queue_checked_celery_executor()(
        broker=config.get("broker") or settings.broker_url(),
        backend=config.get("backend") or settings.result_backend_url(),
        include=config.get("include"),
        config_source=celery_config.config_source(config.get("config_source")),
        retries=RetryMode.from_config(config.get("retries", {"enabled": {}})),
        consumer_check_timeout_s=config.get("consumer_check_timeout_s", 2.0),
        no_consumer_grace_s=config.get("no_consumer_grace_s", 30.0),
    )


# --------------------------------------------------------------------------- live consumers


def live_consumers(app: Any, timeout_s: float = 2.0) -> dict[str, list[str]]:
    """queue name -> worker hostnames currently consuming it (workers answer over the broker)."""
    try:
        replies = app.control.inspect(timeout=timeout_s).active_queues() or {}
    except Exception as exc:  # broker unreachable: say so rather than hang
        raise NoQueueConsumerError(f"cannot reach the Celery broker {app.conf.broker_url!r}: {exc}") from exc
    consumers: dict[str, list[str]] = {}
    for hostname, declared in replies.items():
        for queue in declared or []:
            consumers.setdefault(queue.get("name", ""), []).append(hostname)
    return consumers


def missing_queue_message(queue: str, step_keys: Iterable[str], consumers: dict[str, list[str]]) -> str:
    steps = ", ".join(sorted(step_keys))
    served = ", ".join(sorted(consumers)) or "none"
    if queue == DEFAULT_CELERY_QUEUE:
        hint = (f"steps {steps} have no `{queues.QUEUE_TAG}` op tag, so they went to dagster-celery's default "
                f"queue '{queue}': give the asset op_tags=queues.op_tags_for(<group>)")
    else:
        hint = f"start one: `soniquebay worker --queues {queue}` (steps waiting on it: {steps})"
    return f"no live Celery worker consumes queue '{queue}' (queues with workers: {served}); {hint}"


class ConsumerMonitor:
    """Caches inspect() answers; tells how long a queue has been without a consumer."""

    def __init__(self, app: Any, timeout_s: float, recheck_s: float = 10.0) -> None:
        self.app, self.timeout_s, self.recheck_s = app, timeout_s, recheck_s
        self.consumers: dict[str, list[str]] = {}
        self.checked_at = 0.0
        self.missing_since: dict[str, float] = {}

    def refresh(self) -> dict[str, list[str]]:
        self.consumers = live_consumers(self.app, self.timeout_s)
        self.checked_at = time.monotonic()
        for queue in list(self.missing_since):
            if queue in self.consumers:
                del self.missing_since[queue]
        return self.consumers

    def has_consumer(self, queue: str) -> bool:
        # look again when the queue was missing (a worker may have started) or the answer is old (it may be gone)
        if queue not in self.consumers or time.monotonic() - self.checked_at >= self.recheck_s:
            self.refresh()
        return queue in self.consumers

    def seconds_without_consumer(self, queue: str) -> float:
        now = time.monotonic()
        if now - self.checked_at >= self.recheck_s:
            try:
                self.refresh()
            except NoQueueConsumerError:
                self.consumers = {}
                self.checked_at = now
        if queue in self.consumers:
            return 0.0
        since = self.missing_since.setdefault(queue, now)
        return now - since


class _WatchedResult:
    """An AsyncResult that turns 'queue lost all consumers while waiting' into a step error."""

    def __init__(self, result: Any, queue: str, step_key: str, monitor: ConsumerMonitor, grace_s: float) -> None:
        self._result, self.queue, self.step_key = result, queue, step_key
        self._monitor, self._grace_s = monitor, grace_s
        self._lost = False

    def ready(self) -> bool:
        if self._result.ready():
            return True
        if self._monitor.seconds_without_consumer(self.queue) >= self._grace_s:
            self._lost = True
            return True
        return False

    def get(self) -> Any:
        if self._lost:
            self._result.revoke()
            raise NoQueueConsumerError(
                f"queue '{self.queue}' has had no live Celery worker for {self._grace_s:.0f}s while step "
                f"{self.step_key} waited on it; start one with `soniquebay worker --queues {self.queue}`"
            )
        return self._result.get()

    def revoke(self) -> Any:
        return self._result.revoke()


@functools.cache
def queue_checked_celery_executor() -> type:
    """dagster-celery's executor, refusing to submit to a queue nobody consumes (built on first use: importing
    Celery costs ~0.15 s that in-process runs never pay)."""

    class QueueCheckedCeleryExecutor(celery_executor_class()):
        """dagster-celery's executor, refusing to submit to a queue nobody consumes."""

        def __init__(self, *, consumer_check_timeout_s: float = 2.0, no_consumer_grace_s: float = 30.0, **kwargs):
            super().__init__(**kwargs)
            self.consumer_check_timeout_s = float(consumer_check_timeout_s)
            self.no_consumer_grace_s = float(no_consumer_grace_s)

        def execute(self, plan_context, execution_plan):
            from celery.exceptions import DuplicateTaskNameWarning
            core_celery_execution_loop, _submit_task = celery_execution_loop(), celery_submit_task()
            app = celery_make_app()(self.app_args())
            monitor = ConsumerMonitor(app, self.consumer_check_timeout_s)
            steps_by_queue: dict[str, list[str]] = {}
            for key in execution_plan.step_keys_to_execute:
                step = execution_plan.get_step_by_key(key)
                steps_by_queue.setdefault(step.tags.get(queues.QUEUE_TAG, DEFAULT_CELERY_QUEUE), []).append(key)
            consumers = monitor.refresh() if steps_by_queue else {}
            missing = [q for q in sorted(steps_by_queue) if q not in consumers]
            if missing:
                message = "; ".join(missing_queue_message(q, steps_by_queue[q], consumers) for q in missing)
                yield DagsterEvent.engine_event(plan_context, f"Celery executor: {message}", EngineEventData())
                raise NoQueueConsumerError(message)
            yield DagsterEvent.engine_event(
                plan_context,
                "Celery executor: every queue of this run has a live worker: "
                + ", ".join(f"{q} ({', '.join(sorted(consumers[q]))})" for q in sorted(steps_by_queue)),
                EngineEventData(),
            )

            def submit(app_, context, step, queue, priority, known_state):
                if not monitor.has_consumer(queue):
                    raise NoQueueConsumerError(missing_queue_message(queue, [step.key], monitor.consumers))
                with warnings.catch_warnings():  # dagster-celery re-registers its task on every submission: noise
                    warnings.simplefilter("ignore", DuplicateTaskNameWarning)
                    result = _submit_task(app_, context, step, queue, priority, known_state)
                return _WatchedResult(result, queue, step.key, monitor, self.no_consumer_grace_s)

            yield from core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)

    return QueueCheckedCeleryExecutor
