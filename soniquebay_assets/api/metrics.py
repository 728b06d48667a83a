"""GET /metrics in Prometheus text format. Every figure is read from shared state (the catalog, the broker, the
Dagster instance) when scraped, so any worker process answers the same; the answer is kept a few seconds so
a scrape storm costs one set of queries.

Stage durations and the last scan's time come from Dagster's event log (the `seconds` of each asset's latest
materialization): every origin writes there (CLI scans recorded without a run, sensor runs, Celery steps), while
the catalog's scans table only sees CLI scans; it is the fallback when no Dagster instance is reachable."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from soniquebay_assets import queues
from soniquebay_assets.catalog import browse, deferred, external, queries

log = logging.getLogger("soniquebay.api")
CACHE_SECONDS = 5.0
DAGSTER_CACHE_SECONDS = 30.0


def _iso_to_unix(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _gauge(name: str, documentation: str, values: dict[tuple, float], labels: list[str] | None = None):
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family


class CatalogCollector:
    """Gauges built from the catalog, the broker and the Dagster instance at scrape time."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self._dagster: Any = None
        self._dagster_cache: tuple[float, dict] = (0.0, {})

    def collect(self):  # noqa: C901 - one flat list of families
        now = time.time()
        up = GaugeMetricFamily("soniquebay_catalog_up", "1 when the catalog answered this scrape")
        try:
            with self.api.access.reader() as conn:
                counts = queries.catalog_counts(conn)
                work = deferred.metrics(conn, now=now)
                errors = queries.errors_by_reason(conn)
                last_scan = _iso_to_unix(browse.last_scan_finished_at(conn))
                covers = browse.cover_counts(conn)
                statuses = external.match_counts(conn)
        except Exception:  # noqa: BLE001 - the scrape still answers, saying the catalog is down
            log.exception("metrics: the catalog did not answer")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, key, text in (("tracks", "tracks", "tracks in the catalog"),
                                ("albums", "albums", "albums in the catalog"),
                                ("artists", "artists", "artists in the catalog"),
                                ("files", "files", "audio files inventoried")):
            yield _gauge(f"soniquebay_{name}", text, {(): counts[key]})
        yield _gauge("soniquebay_covers", "stored covers", {(t,): covers.get(t, 0) for t in ("album", "artist")},
                     ["entity_type"])
        yield _gauge("soniquebay_album_matches", "albums by MusicBrainz match status",
                     {(status,): count for status, count in statuses.items()}, ["status"])
        yield _gauge("soniquebay_deferred_work", "deferred work items by kind and state",
                     {(kind, state): f[state] for kind, f in work.items() for state in deferred.STATES},
                     ["kind", "state"])
        yield _gauge("soniquebay_deferred_due", "pending deferred items whose time has come",
                     {(kind,): f["due"] for kind, f in work.items()}, ["kind"])
        yield _gauge("soniquebay_deferred_oldest_pending_age_seconds",
                     "how long the oldest pending item of a kind has waited",
                     {(kind,): f["oldest_pending_age_s"] or 0.0 for kind, f in work.items()}, ["kind"])
        yield _gauge("soniquebay_scan_errors", "files with a recorded problem, by reason",
                     {(reason,): count for reason, count in errors.items()}, ["reason"])
        yield from self._broker()
        stages = self._stages(now)
        last_inventory = max((s["timestamp"] for k, s in stages.items() if k == "file_inventory"), default=None)
        last = max((t for t in (last_scan, last_inventory) if t is not None), default=None)
        if last is not None:
            family = GaugeMetricFamily("soniquebay_last_scan_timestamp_seconds",
                                       "unix time the last scan (inventory) finished")
            family.add_metric([], last)
            yield family
            family = GaugeMetricFamily("soniquebay_last_scan_age_seconds", "seconds since the last scan finished")
            family.add_metric([], max(0.0, now - last))
            yield family
        if stages:
            seconds = GaugeMetricFamily("soniquebay_stage_last_duration_seconds",
                                        "duration of the latest materialization of each asset (its step)",
                                        labels=["asset"])
            when = GaugeMetricFamily("soniquebay_stage_last_run_timestamp_seconds",
                                     "unix time of the latest materialization of each asset", labels=["asset"])
            for asset, figures in sorted(stages.items()):
                when.add_metric([asset], figures["timestamp"])
                if figures["seconds"] is not None:
                    seconds.add_metric([asset], figures["seconds"])
            yield seconds
            yield when

    def _broker(self):
        url = self.api.config.broker_url
        if not url:
            return
        from soniquebay_assets.broker import queue_depths

        depths, problem = queue_depths(url, timeout_s=1.0)
        up = GaugeMetricFamily("soniquebay_celery_broker_up", "1 when the Celery broker answered this scrape")
        up.add_metric([], 0 if problem else 1)
        yield up
        if problem:
            log.warning("metrics: %s", problem)
            return
        yield _gauge("soniquebay_celery_queue_depth", "messages waiting in each Celery queue",
                     {(queue,): depths.get(queue, 0) for queue in queues.ALL_QUEUES}, ["queue"])

    def _stages(self, now: float) -> dict[str, dict]:
        """asset -> latest materialization's time and seconds, from the Dagster instance (cached)."""
        stamp, cached = self._dagster_cache
        if now - stamp < DAGSTER_CACHE_SECONDS or self.api.config.dagster_home is None:
            return cached
        try:
            if self._dagster is None:
                from dagster import DagsterInstance

                self._dagster = DagsterInstance.from_config(str(self.api.config.dagster_home))
            from soniquebay_assets.dagster_defs.monitoring import latest_materializations

            cached = latest_materializations(self._dagster)
        except Exception as exc:  # noqa: BLE001 - metrics go on without the stage figures
            log.warning("metrics: the Dagster instance at %s could not be read (%s); stage durations are left "
                        "out until it can", self.api.config.dagster_home, type(exc).__name__)
            self._dagster = None
        self._dagster_cache = (now, cached)
        return cached


class MetricsEndpoint:
    """Renders the registry at most once per CACHE_SECONDS, off the event loop."""

    def __init__(self, api: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CatalogCollector(api))
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] = (0.0, b"")

    def render(self) -> bytes:
        with self._lock:
            stamp, body = self._cached
            if time.monotonic() - stamp > CACHE_SECONDS or not body:
                body = generate_latest(self.registry)
                self._cached = (time.monotonic(), body)
            return body

    async def endpoint(self, request: Request) -> Response:
        import anyio

        body = await anyio.to_thread.run_sync(self.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
